"""Analysis of trained models: the attention maps of the DAAF paper (and Grad-CAM), what DAAF's
training-only branches predict, and how well PAB finds the keypoints."""
