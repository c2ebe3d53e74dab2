"""Where the dashboard's runs train: worker processes forked from a forkserver with torch preloaded (the
default), or Ray actors on a cluster (``SAE_LAB_RAY_ADDRESS``), each driven from the server through a
:class:`sae.workers.remote.RemoteTrainer` with the Trainer's own API. No Streamlit here."""
