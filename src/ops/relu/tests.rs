//! Tests of ReLU: the CPU forward against the definition (-0 and NaN give
//! +0), the backward against finite differences and at the kink, and the
//! CUDA kernels (host emulation, or a GPU) against the CPU bit for bit,
//! aligned and off the 16-byte boundary, on special values.

use crate::ops::relu::cpu as relu_cpu;
use crate::ops::relu::cpu::{relu_forward, relu_forward_inplace};
use crate::ops::tests::{
    assert_bitwise, check_grad, dot, download_at, poisoned, poisoned_at, relu64, upload_at, view,
    view_mut,
};
use crate::ops::{relu, Error};
use crate::runtime::cuda::CudaDevice;
use crate::tensor::{Shape, Tensor};
use crate::testing::{upload, Rng, POISON};

#[test]
fn relu_matches_definition() {
    let mut rng = Rng(9);
    let mut x = rng.tensor(Shape::new(3, 7, 5, 17));
    x.data[0] = -0.0;
    x.data[1] = f32::NAN;
    let mut y = poisoned(x.shape);
    relu_forward(&x, &mut y).unwrap();
    for (&a, &b) in x.data.iter().zip(&y.data) {
        let want = if a > 0.0 { a } else { 0.0 };
        assert_eq!(b.to_bits(), want.to_bits());
    }
    let mut xi = x.clone();
    relu_forward_inplace(&mut xi).unwrap();
    assert_eq!(xi.data, y.data);
    let mut bad = Tensor::zeros(Shape::new(3, 7, 5, 16));
    assert!(matches!(relu_forward(&x, &mut bad), Err(Error::Shape(_))));
}

#[test]
fn relu_gradient_matches_finite_differences() {
    let mut rng = Rng(13);
    let xs = Shape::new(2, 3, 5, 7);
    // Keep inputs away from the kink at 0.
    let data: Vec<f32> = rng
        .vec(xs.len())
        .iter()
        .map(|&v| if v.abs() < 0.05 { v + 0.1 } else { v })
        .collect();
    let x = Tensor::from_vec(xs, data).unwrap();
    let r = rng.vec(xs.len());
    let dy = Tensor::from_vec(xs, r.clone()).unwrap();
    let mut dx = Tensor::filled(xs, f32::NAN);
    relu_cpu::relu_backward(&x, &dy, &mut dx).unwrap();
    check_grad("relu dx", &x.data, &dx.data, 1e-4, |xv| {
        dot(&relu64(xv), &r)
    });
    let mut g = dy.clone();
    relu_cpu::relu_backward_inplace(&x, &mut g).unwrap();
    assert_eq!(g, dx);
    // x = 0 (and -0) gives gradient 0, like the code bit x > 0.
    let z = Tensor::from_vec(Shape::new(1, 1, 1, 2), vec![0.0, -0.0]).unwrap();
    let d = Tensor::from_vec(z.shape, vec![1.0, 1.0]).unwrap();
    let mut o = Tensor::filled(z.shape, f32::NAN);
    relu_cpu::relu_backward(&z, &d, &mut o).unwrap();
    assert_eq!(o.data, vec![0.0, 0.0]);
}

gpu_test!(relu_is_bit_identical);
fn relu_is_bit_identical(dev: &CudaDevice) {
    let mut rng = Rng(11);
    for len in [1usize, 3, 4, 5, 7, 16, 17, 1023, 4096 + 3, 70_001] {
        for offset in [false, true] {
            let x = rng.special(len);
            let xt = Tensor::from_vec(Shape::new(1, 1, 1, len), x.clone()).unwrap();
            let mut want = Tensor::filled(xt.shape, POISON);
            relu::cpu::relu_forward(&xt, &mut want).expect("cpu relu");

            let xd = upload_at(dev, &x, offset);
            let mut yd = poisoned_at(dev, len, offset);
            relu::cuda::relu_forward(dev, &view(&xd, offset), &mut view_mut(&mut yd, offset))
                .expect("launch");
            let got = download_at(dev, &yd, offset);
            assert_bitwise(&format!("relu len {len} offset {offset}"), &got, &want.data);

            let mut xd = upload_at(dev, &x, offset);
            relu::cuda::relu_forward_inplace(dev, &mut view_mut(&mut xd, offset)).expect("launch");
            let got = download_at(dev, &xd, offset);
            assert_bitwise(
                &format!("relu in place len {len} offset {offset}"),
                &got,
                &want.data,
            );
        }
    }
    // Mismatched lengths are an error, not a launch.
    let xd = upload(dev, &[1.0; 5]);
    let mut yd = upload(dev, &[0.0; 4]);
    assert!(relu::cuda::relu_forward(dev, &xd.as_view(), &mut yd.as_view_mut()).is_err());
}
