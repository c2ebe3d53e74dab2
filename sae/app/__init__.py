"""The dashboard's server side without Streamlit: the per-session job that owns a training thread,
background experiment tasks, and the views derived from a snapshot.
"""
