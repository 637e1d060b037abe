"""hms: harmful brain activity classification from clinical EEG.

The pipeline flows one way: competition files -> native preprocessing (``hms.dsp``) -> model
inputs -> model -> out-of-fold predictions -> ensemble -> ``submission.csv``.
"""

__version__ = "0.1.0"

#: Class order of every target and prediction array (the competition's column order).
CLASSES = ("seizure", "lpd", "gpd", "lrda", "grda", "other")
