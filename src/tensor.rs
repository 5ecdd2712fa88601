//! Host tensors. Every activation in the runtime is a 4-d f32 tensor in
//! NHWC layout: element (n, y, x, c) sits at `((n * h + y) * w + x) * c_total + c`.
//! NHWC keeps the channels of one pixel contiguous, so the CPU conv kernel
//! vectorises over output channels and BatchNorm over channels, and the sign
//! bits of one sample are one contiguous run (the bit order inside a sample
//! does not change a Hamming distance).

use crate::error::{Error, Result};

/// Shape of an NHWC tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Batch: samples.
    pub n: usize,
    /// Height: rows of pixels.
    pub h: usize,
    /// Width: columns of pixels.
    pub w: usize,
    /// Channels per pixel (innermost).
    pub c: usize,
}

impl Shape {
    /// The shape `[n, h, w, c]`.
    pub const fn new(n: usize, h: usize, w: usize, c: usize) -> Self {
        Shape { n, h, w, c }
    }
    /// Elements of the whole tensor.
    pub const fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }
    /// Whether the tensor has no elements (some dimension is 0).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements of one sample (`h * w * c`).
    pub const fn per_sample(&self) -> usize {
        self.h * self.w * self.c
    }
    /// The same shape with another batch size.
    pub const fn with_n(&self, n: usize) -> Self {
        Shape { n, ..*self }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}, {}]", self.n, self.h, self.w, self.c)
    }
}

/// An owned NHWC f32 tensor on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The tensor's shape.
    pub shape: Shape,
    /// The elements in NHWC order, `shape.len()` of them.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: Shape) -> Self {
        Tensor {
            shape,
            data: vec![0.0; shape.len()],
        }
    }
    /// A tensor filled with `value` (tests poison outputs with NaN this way).
    pub fn filled(shape: Shape, value: f32) -> Self {
        Tensor {
            shape,
            data: vec![value; shape.len()],
        }
    }
    /// A tensor of `data` (NHWC order); errors when its length is not `shape.len()`.
    pub fn from_vec(shape: Shape, data: Vec<f32>) -> Result<Self> {
        if data.len() != shape.len() {
            return Err(Error::Shape(format!(
                "tensor of shape {shape} needs {} elements, got {}",
                shape.len(),
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }
    /// Element (n, y, x, c).
    pub fn at(&self, n: usize, y: usize, x: usize, c: usize) -> f32 {
        let s = self.shape;
        self.data[((n * s.h + y) * s.w + x) * s.c + c]
    }
    /// One sample's elements.
    pub fn sample(&self, n: usize) -> &[f32] {
        let k = self.shape.per_sample();
        &self.data[n * k..(n + 1) * k]
    }
}
