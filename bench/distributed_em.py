"""One EM iteration of lgssm.distributed on 100000 sequences x 100 steps, on a
LocalCluster of 1 and of 2 single-threaded worker processes (and, for
reference, the single-process fit on the same sequences).

    python bench/distributed_em.py [--sequences 100000] [--steps 100] [--repeats 3]

The sequences are sampled on the workers (a dask bag, 16 partitions) and
persisted there before timing, so the times are those of the iterations alone:
E-step on the workers, tree reduction of the statistics, M-step on the client.
"""

import argparse
import time

import dask.bag as db
import numpy as np
from distributed import Client, LocalCluster

from lgssm import LinearGaussianSSM
from lgssm import distributed as ld

STATE_DIM, EMISSION_DIM = 2, 3


def sample(model, params, num_timesteps, seed):
    _, y = model.sample(params, key=seed, num_timesteps=num_timesteps)
    y = np.array(y)
    y[np.random.default_rng(seed).random(y.shape) < 0.1] = np.nan
    return y


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = LinearGaussianSSM(STATE_DIM, EMISSION_DIM)
    truth, _ = model.initialize(0, dynamics_weights=[[0.9, 0.2], [-0.2, 0.9]])
    start, props = model.initialize(1)
    print(
        f"{args.sequences} sequences x {args.steps} steps, state_dim {STATE_DIM}, emission_dim {EMISSION_DIM}, "
        f"10% missing; one EM iteration, best of {args.repeats}"
    )
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            bag = db.range(args.sequences, npartitions=16).map(lambda i: sample(model, truth, args.steps, i))
            seqs = ld.persist(bag, client, emission_dim=EMISSION_DIM)
            seconds = best_of(
                args.repeats, lambda seqs=seqs: ld.fit_em(model, start, props, seqs, num_iters=1, verbose=False)
            )
            print(f"lgssm.distributed, {workers} worker(s): {seconds:.2f} s")
            if workers == 1:
                ys = (
                    db.range(args.sequences, npartitions=16)
                    .map(lambda i: sample(model, truth, args.steps, i))
                    .compute()
                )
    seconds = best_of(args.repeats, lambda: model.fit_em(start, props, ys, num_iters=1, verbose=False))
    print(f"single process (LinearGaussianSSM.fit_em, all cores): {seconds:.2f} s")


if __name__ == "__main__":
    main()
