"""srjudge: train and run self-rationalizing LLM judges (arXiv 2410.05495).

Importing the package is cheap: heavy dependencies (torch, transformers, trl) are imported
by the modules that use them, never here.
"""

__version__ = "0.1.0"
