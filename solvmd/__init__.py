"""solvmd: molecular-dynamics workflow for solvation-shell and desolvation studies of battery electrolytes."""

__version__ = "0.1.0"
