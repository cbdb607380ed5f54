"""Time the project's training step against a PyTorch twin of the same model.

Both implementations train the tutorial's model (embedding, masked LSTM, mean
pooling over the real steps, dropout p=0.5 without rescaling, softmax, cost
``mean(-log(p[y] + 1e-8))``, adadelta with rho 0.95 and epsilon 1e-6) on the
same minibatches in the same order, epoch after epoch in turn, in this one
process and under the same BLAS and OpenMP thread limits. Start-up is timed in
child processes: "cold" has an empty PyTensor compile folder and an empty Numba
cache, "warm" reuses the folder the cold child filled. Both children find the
preprocessed dataset already cached.

PyTorch (``pip install torch``) is a benchmark dependency only; the package
never imports it.

OpenBLAS chooses its matrix-product kernels for the processor when it loads,
unless ``OPENBLAS_CORETYPE`` names a core type. Some machines set it (with
``OPENBLAS_L2_SIZE``) to an older type, which on a newer processor halves the
rate of NumPy's and SciPy's products but not PyTorch's, whose LSTM has kernels
of its own. The script therefore runs itself again without those two
variables and prints a note; ``--keep-blas-env`` keeps them. The ``blas`` line of
the output names the kernels in use.

The last output line is machine-readable::

    ratio=R cold_first_update_s=A warm_first_update_s=B same_cost=yes|no|skipped

where R is the project's seconds per epoch over PyTorch's at the largest
thread count measured.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHIVE_NAME = "aclImdb-labeled.tar.gz"
# The tutorial's settings.
SETTINGS = dict(dim_proj=128, batch_size=16, maxlen=100, n_words=10000, valid_portion=0.05,
                seed=123)
# Adadelta's constants, as in lstm_tutorial.optimizers.
RHO, EPSILON = 0.95, 1e-6


def find_archive():
    for parent in (REPO_ROOT, *REPO_ROOT.parents):
        candidate = parent / "shared" / "data" / ARCHIVE_NAME
        if candidate.is_file():
            return candidate
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", help="aclImdb archive or folder, or a preprocessed .pkl "
                        f"(default: {ARCHIVE_NAME} in a shared/data folder above the checkout)")
    parser.add_argument("--data-dir", help="cache folder for the preprocessed dataset "
                        "(default: the package's data folder)")
    parser.add_argument("--epochs", type=int, default=5,
                        help="timed epochs per implementation and thread count (default 5)")
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated BLAS/OpenMP thread counts (default 1,2)")
    parser.add_argument("--mode", default="VM", choices=("VM", "NUMBA", "CVM"),
                        help="PyTensor compile mode of the project (default VM, as train_lstm)")
    parser.add_argument("--lstm-impl", default="fused", choices=("fused", "scan"),
                        help="the project's LSTM implementation (default fused)")
    parser.add_argument("--torch-packed", action="store_true",
                        help="run PyTorch's LSTM on packed sequences instead of the padded "
                        "batch (slower on this CPU)")
    parser.add_argument("--no-torch", action="store_true",
                        help="time the project only (for example on a GPU machine)")
    parser.add_argument("--skip-start", action="store_true",
                        help="skip the cold and warm start-up children")
    parser.add_argument("--skip-same-cost", action="store_true",
                        help="skip the float64 check that both reach the same cost")
    parser.add_argument("--keep-blas-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (by default the "
                        "script runs without them, so that OpenBLAS picks its kernels for "
                        "this processor)")
    parser.add_argument("--child", choices=("project", "torch"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# Data: the training split and the minibatches of each epoch.

def load_training_set(args):
    import numpy as np

    from lstm_tutorial.data import load_data
    from lstm_tutorial.datasets import resolve_dataset

    dataset = args.dataset or find_archive()
    if dataset is None:
        raise SystemExit(f"{ARCHIVE_NAME} not found; pass --dataset")
    path = resolve_dataset(str(dataset), args.data_dir)
    # The same split as train_lstm: the first of four seeds drawn from the seed.
    data_seed = np.random.SeedSequence(SETTINGS["seed"]).spawn(4)[0]
    train, _, _ = load_data(path=path, n_words=SETTINGS["n_words"],
                            valid_portion=SETTINGS["valid_portion"], maxlen=SETTINGS["maxlen"],
                            rng=np.random.default_rng(data_seed))
    return path, train


def epoch_batches(train, epoch, float_type="float32"):
    """Return the epoch's ``(x, mask, y)`` minibatches, shuffled by a seed of ``epoch``."""
    import numpy as np

    from lstm_tutorial.data import prepare_data
    from lstm_tutorial.training import get_minibatches_idx

    rng = np.random.default_rng(1000 + epoch)
    batches = []
    for _, index in get_minibatches_idx(len(train[0]), SETTINGS["batch_size"], shuffle=True,
                                        rng=rng):
        x, mask, y = prepare_data([train[0][t] for t in index], [train[1][t] for t in index])
        batches.append((x, mask.astype(float_type), np.asarray(y, dtype="int64")))
    return batches


def padded_flops(batches, dim):
    """Count multiply-adds times two of the LSTM's matrix products over padded batches.

    Per step and row: x W and h U forward (2 * dim * 4 dim each), and twice
    that backward (gradients of the inputs and of the weights).
    """
    per_row_step = 6 * 2 * dim * 4 * dim
    return sum(per_row_step * x.shape[0] * x.shape[1] for x, _, _ in batches)


# ---------------------------------------------------------------------------
# The project's training step.

def build_project(args, float_type="float32", use_dropout=True, ydim=2):
    import numpy as np
    import pytensor

    from lstm_tutorial.training import _build_functions

    options = dict(n_words=SETTINGS["n_words"], dim_proj=SETTINGS["dim_proj"], ydim=ydim,
                   use_dropout=use_dropout, decay_c=0.0, reload_model=None,
                   optimizer="adadelta", mode=args.mode, seed=SETTINGS["seed"],
                   lstm_impl=args.lstm_impl)
    with pytensor.config.change_flags(floatX=float_type):
        functions = _build_functions(options, np.random.default_rng(7), 11)
    return functions


def project_update(functions, lrate):
    def update(x, mask, y):
        cost = functions.f_grad_shared(x, mask, y)
        functions.f_update(lrate)
        return float(cost)
    return update


# ---------------------------------------------------------------------------
# The PyTorch twin.

def build_torch(params, float_type="float32", use_dropout=True, seed=11, packed=False):
    """Return ``update(x, mask, y) -> cost`` of the same model in PyTorch.

    With ``packed`` the LSTM runs on packed sequences and skips padded steps;
    without, it runs over the padded batch in one fused call and masks the
    mean. Both give the same cost and gradients because prepare_data pads
    only after each review's last token.

    ``params`` are the project's parameters by name; they are copied. The
    tutorial's gates are ordered input, forget, output, candidate and
    nn.LSTM's input, forget, candidate, output; nn.LSTM's second bias stays 0.
    """
    import numpy as np
    import torch

    dtype = getattr(torch, float_type)
    dim = params["lstm_U"].shape[0]
    order = np.concatenate([np.arange(block * dim, (block + 1) * dim) for block in (0, 1, 3, 2)])

    def tensor(value):
        return torch.nn.Parameter(torch.tensor(np.asarray(value), dtype=dtype))

    embedding = tensor(params["Wemb"])
    lstm = torch.nn.LSTM(dim, dim).to(dtype)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(params["lstm_W"][:, order].T.copy()))
        lstm.weight_hh_l0.copy_(torch.tensor(params["lstm_U"][:, order].T.copy()))
        lstm.bias_ih_l0.copy_(torch.tensor(params["lstm_b"][order].copy()))
        lstm.bias_hh_l0.zero_()
    lstm.bias_hh_l0.requires_grad_(False)
    classifier_u, classifier_b = tensor(params["U"]), tensor(params["b"])
    trained = [embedding, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
               classifier_u, classifier_b]
    optimizer = torch.optim.Adadelta(trained, lr=1.0, rho=RHO, eps=EPSILON)
    generator = torch.Generator().manual_seed(seed)

    def update(x, mask, y):
        x = torch.from_numpy(x)
        emb = torch.nn.functional.embedding(x, embedding)
        if packed:
            lengths = torch.from_numpy(mask.sum(axis=0).astype("int64"))
            sequences = torch.nn.utils.rnn.pack_padded_sequence(emb, lengths,
                                                                enforce_sorted=False)
            output, _ = lstm(sequences)
            # Padded steps come back as zeros: their sum over time is the masked sum.
            h, _ = torch.nn.utils.rnn.pad_packed_sequence(output)
            pooled = h.sum(dim=0) / lengths[:, None].to(dtype)
        else:
            # Padding only follows a review's last token, so the states computed
            # over it never reach a real step, and the masked mean drops them.
            torch_mask = torch.from_numpy(mask).to(dtype)
            h, _ = lstm(emb)
            pooled = (h * torch_mask[:, :, None]).sum(dim=0) / torch_mask.sum(dim=0)[:, None]
        if use_dropout:
            keep = torch.bernoulli(torch.full_like(pooled, 0.5), generator=generator)
            pooled = pooled * keep
        probabilities = torch.softmax(pooled @ classifier_u + classifier_b, dim=-1)
        picked = probabilities[torch.arange(x.shape[1]), torch.from_numpy(y)]
        cost = -torch.log(picked + 1e-8).mean()
        optimizer.zero_grad(set_to_none=False)
        cost.backward()
        optimizer.step()
        return cost.item()

    def parameters():
        return {"Wemb": embedding.detach().numpy(), "U": classifier_u.detach().numpy(),
                "b": classifier_b.detach().numpy(),
                "lstm_U": lstm.weight_hh_l0.detach().numpy()[order.argsort()].T}

    update.parameters = parameters
    return update


# ---------------------------------------------------------------------------
# Measurements.

def set_threads(count):
    from threadpoolctl import threadpool_limits

    from lstm_tutorial import lstm_op

    limits = threadpool_limits(limits=count)
    # The LSTM kernels' own thread pool (groups of samples run side by side).
    lstm_op.set_num_threads(count)
    try:
        import torch

        torch.set_num_threads(count)
    except ImportError:
        pass
    return limits


def blas_description():
    """Name the BLAS libraries loaded and the kernels they chose, with OPENBLAS_* settings.

    OpenBLAS picks its kernels for the processor when it loads, unless
    OPENBLAS_CORETYPE names others. Some machines set it to an older core
    type, which halves the matrix-product rate of a newer processor. PyTorch's
    LSTM does not use OpenBLAS.
    """
    import numpy  # noqa: F401  (loads NumPy's OpenBLAS)
    import scipy.linalg  # noqa: F401  (loads SciPy's, which Numba-compiled code calls)
    from threadpoolctl import threadpool_info

    libraries = [f"{Path(info['filepath']).name.split('-')[0]}:{info.get('architecture')}"
                 for info in threadpool_info() if info.get("internal_api") == "openblas"]
    settings = [f"{name}={value}" for name, value in sorted(os.environ.items())
                if name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")]
    return f"kernels={','.join(libraries) or 'none'} env={','.join(settings) or 'none'}"


def matmul_rate(count):
    """Return the best FLOP/s of a float32 (1536 x 128) @ (128 x 512) product.

    The shape is that of a padded batch's input projection. NumPy's and, when
    installed, PyTorch's products are both timed and the faster counts.
    """
    import numpy as np

    set_threads(count)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1536, 128)).astype("float32")
    b = rng.standard_normal((128, 512)).astype("float32")
    products = [lambda: a @ b]
    try:
        import torch

        a_torch, b_torch = torch.from_numpy(a), torch.from_numpy(b)
        products.append(lambda: a_torch @ b_torch)
    except ImportError:
        pass
    rates = []
    for product in products:
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(50):
                product()
            rates.append(50 * 2 * a.shape[0] * a.shape[1] * b.shape[1]
                         / (time.perf_counter() - start))
    return max(rates)


def timed_epoch(update, batches):
    start = time.perf_counter()
    for x, mask, y in batches:
        update(x, mask, y)
    return time.perf_counter() - start


def same_cost_check(args, train, n_updates=5):
    """Train both from the same float64 weights without dropout; compare costs and weights."""
    import numpy as np

    from lstm_tutorial.training import unzip

    functions = build_project(args, "float64", use_dropout=False)
    params = unzip(functions.tparams)
    torch_update = build_torch(params, "float64", use_dropout=False, packed=args.torch_packed)
    project = project_update(functions, np.float64(1e-4))
    batches = epoch_batches(train, 0, "float64")[:n_updates]
    project_costs = [project(*batch) for batch in batches]
    torch_costs = [torch_update(*batch) for batch in batches]
    difference = max(abs(a - b) for a, b in zip(project_costs, torch_costs))
    final = unzip(functions.tparams)
    weights = torch_update.parameters()
    weight_difference = max(float(np.abs(final[name] - weights[name]).max()) for name in weights)
    same = difference < 1e-7 and weight_difference < 1e-7
    print(f"same_cost updates={n_updates} project={project_costs[-1]:.10f} "
          f"torch={torch_costs[-1]:.10f} max_cost_diff={difference:.2e} "
          f"max_weight_diff={weight_difference:.2e} -> {'yes' if same else 'no'}")
    return same


def start_child(args, implementation, compiledir, numba_cache):
    """Run a fresh process up to its first update; return its report as a dict."""
    env = dict(os.environ)
    env["PYTENSOR_FLAGS"] = f"base_compiledir={compiledir}"
    env["NUMBA_CACHE_DIR"] = str(numba_cache)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", implementation,
               "--mode", args.mode, "--lstm-impl", args.lstm_impl]
    if args.torch_packed:
        command.append("--torch-packed")
    if args.dataset:
        command += ["--dataset", str(args.dataset)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    launched = time.time()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"start-up child {implementation} failed:\n{finished.stderr[-3000:]}")
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    report["first_update_s"] = report["first_update_at"] - launched
    return report


def run_child(args):
    """Child process: load the cached data, build, compile and run one update."""
    import numpy as np

    compile_start = time.time()
    _, train = load_training_set(args)
    data_s = time.time() - compile_start
    batch = epoch_batches(train, 0)[0]
    build_start = time.time()
    if args.child == "project":
        functions = build_project(args)
        update = project_update(functions, np.float32(1e-4))
    else:
        import torch

        from lstm_tutorial.model import init_params

        params = init_params(dict(n_words=SETTINGS["n_words"], dim_proj=SETTINGS["dim_proj"],
                                  ydim=2), np.random.default_rng(7))
        update = build_torch(params, packed=args.torch_packed)
        torch.manual_seed(0)
    update(*batch)
    done = time.time()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"first_update_at": done, "data_s": data_s,
                      "compile_s": done - build_start, "peak_mib": peak_mib}))


BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    found = [name for name in BLAS_VARIABLES if name in os.environ]
    if found and not args.keep_blas_env:
        # NumPy, and with it OpenBLAS, is not loaded yet: start again without them.
        settings = ", ".join(f"{name}={os.environ[name]}" for name in found)
        print(f"note: running without {settings} so that OpenBLAS picks its kernels for this "
              "processor; pass --keep-blas-env to keep them", flush=True)
        environment = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv],
                  environment)

    import platform

    import numpy as np

    thread_counts = [int(count) for count in args.threads.split(",")]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    print(f"machine cpu={cpu!r} cores={os.cpu_count()} date={time.strftime('%Y-%m-%d %H:%M')} "
          f"python={platform.python_version()}")
    print(f"blas {blas_description()}")
    preprocess_start = time.perf_counter()
    path, train = load_training_set(args)
    print(f"data file={path} train={len(train[0])} load_s={time.perf_counter() - preprocess_start:.1f}")

    # Start-up: cold (empty caches) then warm (the caches the cold child filled).
    start = {}
    if not args.skip_start:
        with tempfile.TemporaryDirectory(prefix="lstm-benchmark-") as folder:
            for implementation in ("project",) + (() if args.no_torch else ("torch",)):
                for kind in ("cold", "warm"):
                    report = start_child(args, implementation, Path(folder) / "pytensor",
                                         Path(folder) / "numba")
                    start[implementation, kind] = report
                    print(f"start impl={implementation} kind={kind} "
                          f"first_update_s={report['first_update_s']:.1f} "
                          f"build_and_first_call_s={report['compile_s']:.1f} "
                          f"data_s={report['data_s']:.1f} peak_mib={report['peak_mib']:.0f}")

    same = None
    if not args.no_torch and not args.skip_same_cost:
        same = same_cost_check(args, train)

    functions = build_project(args)
    implementations = {"project": project_update(functions, np.float32(1e-4))}
    if not args.no_torch:
        from lstm_tutorial.training import unzip

        implementations["torch"] = build_torch(unzip(functions.tparams),
                                               packed=args.torch_packed)
    # Compile and warm up outside the timed epochs.
    warmup = epoch_batches(train, -1)[:3]
    for update in implementations.values():
        for batch in warmup:
            update(*batch)

    summary = {}
    for count in thread_counts:
        set_threads(count)
        rate = matmul_rate(count)
        times = {name: [] for name in implementations}
        floor = None
        for epoch in range(args.epochs):
            batches = epoch_batches(train, epoch)
            floor = padded_flops(batches, SETTINGS["dim_proj"]) / rate
            for name, update in implementations.items():
                times[name].append(timed_epoch(update, batches))
        n_updates = len(batches)
        print(f"threads={count} matmul_gflops={rate / 1e9:.1f} floor_s={floor:.2f} "
              f"updates_per_epoch={n_updates} epochs={args.epochs}")
        print("| impl | threads | s/epoch (median) | min | max | ms/update | vs torch | vs floor |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, values in times.items():
            versus = (f"{medians[name] / medians['torch']:.2f}" if "torch" in medians else "-")
            print(f"| {name} | {count} | {medians[name]:.2f} | {min(values):.2f} | "
                  f"{max(values):.2f} | {1000 * medians[name] / n_updates:.1f} | {versus} | "
                  f"{medians[name] / floor:.2f} |")
        summary[count] = medians
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    where = "see the start lines" if start else "time the start-up to see them"
    print(f"peak_mib_this_process={peak_mib:.0f} (both implementations; per implementation "
          f"{where})")

    largest = summary[max(thread_counts)]
    ratio = largest["project"] / largest["torch"] if "torch" in largest else float("nan")
    cold = start.get(("project", "cold"), {}).get("first_update_s", float("nan"))
    warm = start.get(("project", "warm"), {}).get("first_update_s", float("nan"))
    # same is None when the check was skipped (--skip-same-cost or --no-torch).
    if same is None:
        same_text = "skipped"
    else:
        same_text = "yes" if same else "no"
    print(f"ratio={ratio:.2f} cold_first_update_s={cold:.1f} warm_first_update_s={warm:.1f} "
          f"same_cost={same_text}")


if __name__ == "__main__":
    main()
