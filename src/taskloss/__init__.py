"""taskloss: task-based losses for medical image computing.

Perceptual, adversarial, feature-matching and balanced composite losses for grayscale 2-D and 3-D
medical images, the networks the literature compares them on, the image-quality metrics used to
score them, and one-command comparison studies (MR -> X-ray projection synthesis, compressed-sensing
MRI) on built-in simulated data or on the user's own data.
"""

__version__ = "0.1.0"
