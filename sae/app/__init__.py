"""The dashboard's server side without Streamlit: the per-session job that owns a training thread (``job``),
the settings it is built from (``settings``), the activation distributions it records (``trace``), the reaper
that pauses or stops unwatched jobs (``reaper``), background experiment tasks, and the views derived from a
snapshot.
"""
