"""Training, honest evaluation and export of the next-bar models (see README "Models")."""
