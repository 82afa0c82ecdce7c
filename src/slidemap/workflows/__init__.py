"""Workflows: what strings the layers below together for one command.

``configs`` (load a config and check its registry names), ``train`` (train one experiment
and draw its curves), ``evaluate`` (score a checkpoint through the one inference path),
``figures`` (the paper's figure sets), ``compare`` (Table 1, figures, report), ``report``
(report.md / report.html), ``crossval`` (leave-one-area-out) and ``demo``. The command line (:mod:`slidemap.cli`) calls these;
nothing below imports them.
"""
