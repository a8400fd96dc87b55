"""Each default a user can see, written once: the library's options, the CLI's flags and
their help text all read them from here (a module without imports, so ``--help`` stays fast)."""

MODEL = "yolox-nano"
#: Detections kept at or above this score; ByteTrack's own high threshold is the same.
CONF = 0.3
#: Same-class boxes overlapping more than this merge (the YOLOX recipe's value).
IOU = 0.45
FPS_EVERY = 30  # the seed's rolling FPS line came every 30 frames
RECONNECT = 5
CODEC = "h264"
MAX_DET = 300
TRACK_BUFFER_S = 1.0
ANCHOR = "bottom"
LINE_FRAMES = 2
BLUR_STYLE = "gaussian"
BLUR_SHAPE = "box"
BLUR_CLASSES = "person"  # what a bare --blur hides
#: annotate batch: cores per worker process when --jobs is not given (README, "Batch").
BATCH_CORES_PER_JOB = 2
#: ... and at most one worker process per this many inputs.
BATCH_INPUTS_PER_JOB = 4
