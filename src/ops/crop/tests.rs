//! Tests of the spatial (and channel) crop: the CPU op against a naive
//! per-element reference, windows outside the input, and the CUDA kernel
//! (host emulation, or a GPU) against the CPU bit for bit. Outputs start
//! NaN-poisoned, so an element an op forgets to write fails.

use crate::ops::crop::{self, CropSpec};
use crate::runtime::cuda::CudaDevice;
use crate::tensor::{Shape, Tensor};
use crate::testing::{Rng, POISON};

fn cs(top: usize, left: usize, c0: usize, h: usize, w: usize, c: usize) -> CropSpec {
    CropSpec {
        top,
        left,
        h,
        w,
        c0,
        c,
    }
}

fn crop_cases() -> Vec<(Shape, CropSpec)> {
    vec![
        (Shape::new(2, 5, 7, 3), cs(1, 1, 0, 4, 6, 3)),
        (Shape::new(1, 32, 32, 17), cs(1, 1, 0, 31, 31, 17)),
        (Shape::new(3, 9, 6, 5), cs(2, 0, 0, 3, 5, 5)),
        (Shape::new(1, 1, 1, 1), cs(0, 0, 0, 1, 1, 1)),
        (Shape::new(2, 7, 5, 43), cs(0, 0, 0, 7, 5, 42)),
        (Shape::new(1, 6, 9, 17), cs(1, 2, 3, 4, 5, 11)),
    ]
}

#[test]
fn crop_matches_naive() {
    let mut rng = Rng(12);
    for (s, spec) in crop_cases() {
        let x = rng.tensor(s);
        let out = spec.out_shape(s).unwrap();
        let mut y = Tensor::filled(out, POISON);
        crop::cpu::crop_forward(&spec, &x, &mut y).unwrap();
        for n in 0..out.n {
            for i in 0..out.h {
                for j in 0..out.w {
                    for c in 0..out.c {
                        assert_eq!(
                            y.at(n, i, j, c).to_bits(),
                            x.at(n, spec.top + i, spec.left + j, spec.c0 + c).to_bits(),
                            "{s} {spec:?} at {n},{i},{j},{c}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn crop_rejects_windows_outside_the_input() {
    let s = Shape::new(1, 4, 4, 2);
    for spec in [
        cs(1, 0, 0, 4, 4, 2),
        cs(0, 0, 0, 0, 4, 2),
        cs(usize::MAX, 0, 0, 2, 4, 2),
        cs(0, 0, 1, 4, 4, 2),
        cs(0, 0, 0, 4, 4, 0),
    ] {
        let e = spec.out_shape(s).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }
    assert!(CropSpec::to_end(s, 4, 0).is_err());
    assert_eq!(CropSpec::to_end(s, 1, 1).unwrap(), cs(1, 1, 0, 3, 3, 2));
    assert_eq!(
        CropSpec::first_channels(s, 1).unwrap(),
        cs(0, 0, 0, 4, 4, 1)
    );
    assert!(CropSpec::first_channels(s, 3).is_err());
}

gpu_test!(crop_gpu_matches_cpu);
fn crop_gpu_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(14);
    for (s, spec) in crop_cases() {
        let x = rng.tensor(s);
        let out = spec.out_shape(s).unwrap();
        let mut want = Tensor::filled(out, POISON);
        crop::cpu::crop_forward(&spec, &x, &mut want).unwrap();
        let xd = dev.upload(&x.data).unwrap();
        let mut yd = dev.upload(&vec![POISON; out.len()]).unwrap();
        crop::cuda::crop_forward(dev, &spec, s, &xd.as_view(), &mut yd.as_view_mut()).unwrap();
        let got = dev.download(&yd).unwrap();
        assert!(
            got.iter()
                .zip(&want.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "crop gpu {s} {spec:?}"
        );
    }
}
