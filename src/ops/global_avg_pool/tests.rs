//! Tests of global average pooling: the CPU forward against an f64
//! reference, and the CUDA kernel (host emulation, or a GPU) against the
//! CPU to 1e-5 relative, up to a grid larger than one pass. (Its backward
//! is tested with ReLU's and linear's in `ops::tests`.)

use crate::ops::global_avg_pool;
use crate::ops::global_avg_pool::cpu::global_avg_pool_forward;
use crate::ops::tests::{
    assert_close, assert_within, download_at, poisoned, poisoned_at, CHANNELS, SIDES,
};
use crate::runtime::cuda::CudaDevice;
use crate::tensor::{Shape, Tensor};
use crate::testing::{upload, Rng, POISON};

#[test]
fn global_avg_pool_matches_reference() {
    for (n, h, w, c) in [(1, 1, 1, 1), (3, 7, 5, 17), (2, 8, 8, 64)] {
        let x = Rng(17).tensor(Shape::new(n, h, w, c));
        let mut y = poisoned(Shape::new(n, 1, 1, c));
        global_avg_pool_forward(&x, &mut y).unwrap();
        let mut want = Vec::new();
        for b in 0..n {
            for ch in 0..c {
                let mut s = 0.0f64;
                for yy in 0..h {
                    for xx in 0..w {
                        s += x.at(b, yy, xx, ch) as f64;
                    }
                }
                want.push(s / (h * w) as f64);
            }
        }
        let scale = vec![1.0; want.len()];
        assert_close("gap", &y.data, &want, &scale, 1e-6, 0.0);
        let mut bad = poisoned(Shape::new(n, 1, 2, c));
        assert!(global_avg_pool_forward(&x, &mut bad).is_err());
    }
}

gpu_test!(global_avg_pool_matches_cpu);
fn global_avg_pool_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(14);
    let mut shapes = Vec::new();
    for n in [1usize, 3] {
        for &h in &SIDES {
            for &w in &SIDES {
                for &c in &CHANNELS {
                    shapes.push(Shape::new(n, h, w, c));
                }
            }
        }
    }
    // NB201's classifier input, and one with more outputs than a grid holds
    // threads in one pass (2^16 blocks × 256).
    shapes.push(Shape::new(128, 8, 8, 64));
    shapes.push(Shape::new(1100, 2, 2, 16_001));
    for shape in shapes {
        let x = rng.plain(shape.len());
        let xt = Tensor::from_vec(shape, x.clone()).unwrap();
        let out = Shape::new(shape.n, 1, 1, shape.c);
        let mut want = Tensor::filled(out, POISON);
        global_avg_pool::cpu::global_avg_pool_forward(&xt, &mut want).expect("cpu gap");

        let xd = upload(dev, &x);
        let mut yd = poisoned_at(dev, out.len(), false);
        let got_shape = global_avg_pool::cuda::global_avg_pool_forward(
            dev,
            shape,
            &xd.as_view(),
            &mut yd.as_view_mut(),
        )
        .expect("launch");
        assert_eq!(got_shape, out);
        let got = download_at(dev, &yd, false);
        // Scale: the mean of |x| over the pixels of (n, c).
        let hw = shape.h * shape.w;
        let scale = |i: usize| {
            let (b, ch) = (i / shape.c, i % shape.c);
            (0..hw)
                .map(|p| x[(b * hw + p) * shape.c + ch].abs())
                .sum::<f32>()
                / hw as f32
        };
        assert_within(
            &format!("global_avg_pool on {shape}"),
            &got,
            &want.data,
            scale,
        );
    }
}
