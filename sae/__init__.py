"""The Sparse Autoencoder Lab: the classic KL-sparsity autoencoder (UFLDL / CS294A), exactly.

The core (everything but ``sae.ui``) imports no Streamlit: use it from a notebook, a script or tests.
"""

from sae.core.config import ConfigError, ModelConfig, TrainConfig
from sae.core.loss import kl_divergence, kl_divergence_grad, mean_activation, sparse_autoencoder_loss
from sae.core.model import SparseAutoencoder
from sae.training.trainer import Snapshot, Trainer

__all__ = ["ConfigError", "ModelConfig", "TrainConfig", "SparseAutoencoder", "kl_divergence",
           "kl_divergence_grad", "mean_activation", "sparse_autoencoder_loss", "Snapshot", "Trainer"]
__version__ = "0.1.0"
