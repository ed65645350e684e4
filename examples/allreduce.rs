//! The cost of summing f32 buffers across the processes of an MPI job, as
//! the data-parallel step sums its gradients (blocking `MPI_Allreduce`,
//! in place): one JSON line per size, with the median of the timed calls.
//! docs/distributed.md fits its latency and bandwidth from these lines.
//!
//!     cargo build --release --features mpi --example allreduce
//!     mpirun -np 2 target/release/examples/allreduce
//!
//! Rank 0 prints. Sizes: 4 bytes to 16 MiB, and the gradients of
//! programs/mlp.dl (203,530 f32s).

use mpi::collective::SystemOperation;
use mpi::traits::*;
use std::time::Instant;

fn main() {
    let Some(universe) = mpi::initialize() else {
        eprintln!("error: MPI was initialized twice");
        std::process::exit(1);
    };
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let mut sizes: Vec<usize> = (0..=22).step_by(2).map(|p| 1usize << p).collect();
    sizes.push(203_530);
    sizes.sort_unstable();
    for n in sizes {
        let send = vec![1.0f32; n];
        let mut recv = vec![0.0f32; n];
        // More repetitions for small sums; about 0.2 s of calls each.
        let reps = (50_000_000 / (n * 4).max(4_000)).clamp(20, 5_000);
        let mut times = Vec::with_capacity(reps);
        for r in 0..reps + 5 {
            world.barrier();
            let t = Instant::now();
            world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
            if r >= 5 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        if rank == 0 {
            println!(
                "{{\"kind\":\"allreduce\",\"ranks\":{size},\"bytes\":{},\"median_us\":{:.2},\"reps\":{reps}}}",
                n * 4,
                times[times.len() / 2] * 1e6
            );
        }
    }
}
