//! The SGD update kernel against PyTorch's rule written out in f32, on
//! random inputs (the other backward kernels' tests sit beside their ops,
//! in `src/ops/<op>/tests.rs`).
//!
//! Each GPU test runs twice (see `common`): `…::emulated` on the host
//! emulation of the CUDA backend, always, and `…::gpu` on a GPU, ignored
//! unless asked for (`--include-ignored`, as the GPU bundle does).

#[macro_use]
mod common;
use common::Rng;
use dasnas::runtime::cuda::kernels::{sgd_update, SgdStep};
use dasnas::runtime::cuda::{CudaDevice, DeviceBuffer};

const POISON: f32 = f32::from_bits(0x7fc0_dead);

impl Rng {
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.unit()).collect()
    }
}

fn up<T: bytemuck::Pod>(dev: &CudaDevice, host: &[T]) -> DeviceBuffer<T> {
    dev.upload(host).expect("upload")
}

fn down<T: bytemuck::Pod>(dev: &CudaDevice, buf: &DeviceBuffer<T>) -> Vec<T> {
    dev.download(buf).expect("download")
}

gpu_test!(sgd_update_matches_torch_rule);
fn sgd_update_matches_torch_rule(dev: &CudaDevice) {
    let mut rng = Rng(47);
    let lr = [0.1f32, 0.05, 0.025, 0.0125];
    for (momentum, weight_decay, nesterov) in [
        (0.9f32, 5e-4f32, false),
        (0.9, 5e-4, true),
        (0.0, 0.0, false),
        (0.0, 1e-3, false),
        (0.5, 0.0, true),
    ] {
        let len = 70_001;
        let mut p = rng.vec(len);
        let mut buf = vec![0f32; len];
        let mut pd = up(dev, &p);
        let mut bd = up(dev, &vec![POISON; len]);
        let lrd = up(dev, &lr);
        for (step, &rate) in lr.iter().enumerate() {
            let g = rng.vec(len);
            let gd = up(dev, &g);
            sgd_update(
                dev,
                &mut pd.slice_mut(..),
                &gd.slice(..),
                &mut bd.slice_mut(..),
                &lrd.slice(..),
                SgdStep {
                    momentum,
                    weight_decay,
                    nesterov,
                    step,
                    first: step == 0,
                },
            )
            .unwrap();
            // torch.optim.SGD, written out in f32 (each op rounded).
            for i in 0..len {
                let mut d = g[i];
                if weight_decay != 0.0 {
                    d += weight_decay * p[i];
                }
                if momentum != 0.0 {
                    buf[i] = if step == 0 { d } else { momentum * buf[i] + d };
                    d = if nesterov {
                        d + momentum * buf[i]
                    } else {
                        buf[i]
                    };
                }
                p[i] -= rate * d;
            }
        }
        let got = down(dev, &pd);
        for i in 0..len {
            assert_eq!(
                got[i].to_bits(),
                p[i].to_bits(),
                "sgd p[{i}] momentum {momentum} wd {weight_decay} nesterov {nesterov}: gpu {} want {}",
                got[i],
                p[i]
            );
        }
    }
    // A step beyond the schedule is an error, not an out-of-bounds read.
    let mut pd = up(dev, &[0f32; 4]);
    let mut bd = up(dev, &[0f32; 4]);
    let gd = up(dev, &[0f32; 4]);
    let lrd = up(dev, &lr);
    let step = SgdStep {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
        step: lr.len(),
        first: true,
    };
    assert!(sgd_update(
        dev,
        &mut pd.slice_mut(..),
        &gd.slice(..),
        &mut bd.slice_mut(..),
        &lrd.slice(..),
        step
    )
    .is_err());
}
