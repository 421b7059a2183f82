"""Building and assessing models: what a screening run never imports.

Classifier training (:mod:`.train`, its :mod:`.recipe`, :mod:`.augment`, :mod:`.pretrained`
initialisation), labelled data sets and class schemes (:mod:`.datasets`, :mod:`.schemes`),
evaluation and its metrics (:mod:`.evaluate`, :mod:`.metrics`), explanations (:mod:`.explain`),
and the YOLO detector's training, data-set conversion and evaluation (:mod:`.yolo_train`,
:mod:`.detector_convert`, :mod:`.detector_eval`). This package may import the inference side
(``wsi_screen.classifiers``, ``wsi_screen.detectors``, the pipeline stages); nothing there imports
it back (``tests/test_layers.py``).
"""
