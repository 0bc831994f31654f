"""The workbench shell: CLI, Streamlit app and demo builder."""

__all__: list[str] = []
