"""The lab's data files: ACME's seed data and documents, and the labelled examples modules 2 and
3 score the model against.

May import: nothing (files only).
"""
