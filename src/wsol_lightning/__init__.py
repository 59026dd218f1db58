"""wsol_lightning: weakly supervised object localization as PyTorch Lightning modules.

albumentations contacts PyPI on import to check for updates unless ``NO_ALBUMENTATIONS_UPDATE`` is
set; this library never touches the network by itself, so it sets the variable (unless the user did)
before anything imports albumentations.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
