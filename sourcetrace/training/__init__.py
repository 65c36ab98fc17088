"""Stage 0: training an embedding extractor (AASIST or ResNet-34) on a training protocol.

`settings` (no torch): the `train` section's keys, defaults per architecture
(`TRAIN_DEFAULTS`) and `validate_train_section(cfg)`; `data`: protocol rows, the dev
hold-out, the cropping dataset; `recipes`: optimizer, schedule, losses, SpecAugment;
`checkpoints`: best.pth and last.pt; `loop`: the epochs, one process or many; `stage`: the
body the registry runs (`run(ctx)`, `inputs(cfg)`).
"""
