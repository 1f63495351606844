"""Browser viewer (viser) for trained models, guided runs, edits and live training runs.

viser is imported only here (view.py, or train.py --viewer): nothing else depends on it.
"""
