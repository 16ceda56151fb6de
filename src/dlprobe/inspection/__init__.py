"""`dlprobe inspect`: one trained model measured through the public library API, as an HTML card and a JSON file.

    dlprobe inspect --model models.py:make_cnn --checkpoint model.pt --dataset mnist-5k --out inspect/
    # -> inspect/inspect.html (self-contained card) and inspect/inspect.json (every number)

What is measured (cross-entropy, the model in eval mode: dropout off, BatchNorm with its running statistics):
loss and accuracy on the whole training and test sets; on a fixed stratified training subset of max_examples
(seeded by `seed`): the top and bottom Hessian eigenvalues (`dlprobe.Hessian.eigenvalues`, Lanczos), the trace
(Hutchinson, with its standard error) and the spectral density (stochastic Lanczos quadrature), a 1-D and a
2-D filter-normalized loss landscape (`dlprobe.interpolate` towards theta + d1, `dlprobe.surface` on (d1, d2),
both from `dlprobe.filter_directions`), epsilon-sharpness (`dlprobe.sharpness`); on a stratified test subset of
max_examples: the input-gradient and Jacobian sensitivities (`dlprobe.sensitivity`); the layer table
(models/describe.py). The model comes from the user's factory (models/user.py: input_shape (C, H, W),
num_outputs = the classes, seed, generator) with the checkpoint's weights (models/checkpoint.py).

inspect.json: model (model, file, function, sha256, docstring, arguments), checkpoint (path, format "state_dict" or
"dlprobe", sha256, tensors, epoch/step; null without one), dataset, device, settings (every option), evaluation
(train/test: loss, accuracy, examples), subsets, hessian (num_params, examples, loss, top_eigenvalues descending,
bottom_eigenvalues ascending, trace {estimate, standard_error, probes}, density {nodes, weights, sigma, steps,
runs}), landscape (bn, line {alphas, loss, accuracy}, surface {coordinates, loss, accuracy: [i][j] at
(coordinates[i], coordinates[j])}), sharpness (percent, loss, loss_at_maximum, epsilon, steps), sensitivity
(input_gradient, jacobian, examples), layer_table (models/describe.py), timings_s, wall_time_s, versions.

    command.py      the options (InspectSettings) and the command, light to import
    measure.py      the model, the data and every measurement -> (inspect.json's record, figures as PNG bytes)
    report/card.py  the HTML card
"""
