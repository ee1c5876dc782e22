//! Interleaved images in OpenCV's memory layout: rows packed, channels interleaved, BGR order.

/// An image of `channels` interleaved samples per pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Raster<T> {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<T>,
}

/// An 8-bit BGR frame, the unit every processor works on.
pub type Frame = Raster<u8>;
/// A single-channel float mask in [0, 1].
pub type Mask = Raster<f32>;

impl<T: Copy + Default> Raster<T> {
    pub fn new(width: usize, height: usize, channels: usize) -> Self {
        Self { width, height, channels, data: vec![T::default(); width * height * channels] }
    }

    pub fn filled(width: usize, height: usize, channels: usize, value: T) -> Self {
        Self { width, height, channels, data: vec![value; width * height * channels] }
    }

    pub fn from_vec(width: usize, height: usize, channels: usize, data: Vec<T>) -> Self {
        assert_eq!(data.len(), width * height * channels, "raster buffer size mismatch");
        Self { width, height, channels, data }
    }

    pub fn stride(&self) -> usize {
        self.width * self.channels
    }

    pub fn row(&self, y: usize) -> &[T] {
        let stride = self.stride();
        &self.data[y * stride..(y + 1) * stride]
    }

    pub fn row_mut(&mut self, y: usize) -> &mut [T] {
        let stride = self.stride();
        &mut self.data[y * stride..(y + 1) * stride]
    }

    pub fn pixel(&self, x: usize, y: usize) -> &[T] {
        let start = (y * self.width + x) * self.channels;
        &self.data[start..start + self.channels]
    }
}
