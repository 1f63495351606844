"""Text-guided editing of a trained scene (edit.py), in the iterative 2D <-> 3D style of
Instruct-NeRF2NeRF / Instruct-GS2GS.

A round: render the selected training views -> edit each render (InstructPix2Pix, or a
deterministic editor for tests) -> the edits become the training targets -> optimise with the
shared training loop (scene/trainer.py) under the edit objective -> save everything.

Modules (one concern each):
  config         flags, YAML config merge, validation
  editor_base    the "edit function" interface (render -> edited image)
  editors        the deterministic editor and make_editor (which picks one from --editor)
  pix2pix        the InstructPix2Pix editor (diffusers, loaded lazily)
  roi            RoI annotations -> 2D masks -> per-Gaussian edit weights -> per-view soft masks
  views          coverage-aware, residual-prioritised view selection
  losses         the edit objective (RoI photometric, preservation, opacity, consistency, regs)
  policies       mode policies (restyle / replace / remove) and the edit's gradient statistics
  metrics        per-round metrics (RoI PSNR/SSIM/LPIPS, drift, consistency, CLIP direction)
  artifacts      the output layout, atomic writes, checkpoints, training_state, manifest
  output_folder  where a run starts: fresh, --resume, --from_round (and the folder's tidying)
  rounds         one round in named steps: prepare views, edit, optimise, score, commit
  session        the run (EditSession): loads the trained model once, runs the rounds still to do
"""
