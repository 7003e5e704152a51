"""Video intake: download, probe (ffmpeg) and key frames."""
