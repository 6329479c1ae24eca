"""The training stage (workflow/rules/train.smk): datasets and trained residual networks.

Inputs: the ``datasets`` and ``experiments`` sections of the config (and, for MNIST and
CIFAR-10, the files in a dataset's ``path``). Outputs: ``results/data/{dataset}.npz`` and,
per (experiment, depth), ``results/train/{exp}/depth_{depth}.npz`` with all seeds' initial
and trained weights (the per-layer table beside it is :func:`..scaling.weights.extract`).

- :mod:`.data`: the datasets of docs/maths.md §2; :mod:`.fetch` their downloads
  (the file names and folders both of them use are :mod:`resnet_scaling.dataset_files`);
- :mod:`.activations`: σ with the derivatives the limits need (§1, §4);
- :mod:`.resnet`: the batched ensemble of networks and its discrete adjoint (§1, §5);
- :mod:`.compiled`: the compiled loop over layers of its one-matrix block (``csrc/``), built
  on first use;
- :mod:`.train`: the trainer with the stopping rule and bitwise resumption (§1);
- :mod:`.resources`: the memory requests of the depth-dependent jobs, read by the rules
  (workflow/rules/common.smk) and by nothing in the package.
"""
