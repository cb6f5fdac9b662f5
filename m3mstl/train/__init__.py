"""Training: the curriculum trainer, the face detector's training and the classical dlib peer."""
