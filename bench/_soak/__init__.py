"""Parts of bench/soak.py: ``base`` (helpers, ``Proc``), ``stack`` (the processes and the
agents), ``faults`` (the scripted faults), ``report`` (the figures). The script itself runs the
schedule."""
