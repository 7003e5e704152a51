"""Code shared by the Cloud Functions and the scripts of vision-to-tag."""
