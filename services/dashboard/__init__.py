"""The Streamlit dashboard: live plots and predictions, recording, sessions, model, system."""
