//! Reads one initializer tensor out of an ONNX file without loading the graph: inswapper's `emap`
//! is the graph's last initializer (spec §8.1), and ONNX Runtime does not expose initializers.
//!
//! Hand-written because only three protobuf fields are needed; pulling in a protobuf code
//! generator and the ONNX schema for that would be heavier than this reader. Fields are skipped
//! with seeks, so a 500 MB model is never read into memory.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{PipelineError, Result};

const MODEL_GRAPH: u64 = 7;
const GRAPH_INITIALIZER: u64 = 5;
const TENSOR_DIMS: u64 = 1;
const TENSOR_DATA_TYPE: u64 = 2;
const TENSOR_FLOAT_DATA: u64 = 4;
const TENSOR_RAW_DATA: u64 = 9;
const FLOAT: u64 = 1;

/// A float tensor: its dims and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Initializer {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// The last initializer of the model's graph, which must be a float tensor.
pub fn last_initializer(path: &Path) -> Result<Initializer> {
    let invalid = |reason: &str| PipelineError::ModelContract {
        name: path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        reason: reason.to_string(),
    };
    let file = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut reader = ProtoReader { inner: BufReader::new(file) };
    let (graph_start, graph_len) =
        reader.find_field(MODEL_GRAPH, u64::MAX)?.ok_or_else(|| invalid("no graph in the ONNX file"))?;
    reader.seek_to(graph_start)?;
    let mut last = None;
    let graph_end = graph_start + graph_len;
    while reader.position()? < graph_end {
        let (field, wire) = reader.key()?;
        if field == GRAPH_INITIALIZER && wire == 2 {
            let len = reader.varint()?;
            last = Some((reader.position()?, len));
            reader.skip_bytes(len)?;
        } else {
            reader.skip(wire)?;
        }
    }
    let (start, len) = last.ok_or_else(|| invalid("the graph has no initializers"))?;
    reader.seek_to(start)?;
    let mut bytes = vec![0u8; usize::try_from(len).map_err(|_| invalid("initializer too large"))?];
    reader.inner.read_exact(&mut bytes).map_err(|e| PipelineError::io(path, e))?;
    parse_tensor(&bytes).ok_or_else(|| invalid("the last initializer is not a float tensor"))
}

struct ProtoReader<R> {
    inner: R,
}

impl<R: Read + Seek> ProtoReader<R> {
    fn io(error: std::io::Error) -> PipelineError {
        PipelineError::Runtime(format!("reading ONNX file: {error}"))
    }

    fn position(&mut self) -> Result<u64> {
        self.inner.stream_position().map_err(Self::io)
    }

    fn seek_to(&mut self, position: u64) -> Result<()> {
        self.inner.seek(SeekFrom::Start(position)).map(|_| ()).map_err(Self::io)
    }

    fn byte(&mut self) -> Result<u8> {
        let mut byte = [0u8];
        self.inner.read_exact(&mut byte).map_err(Self::io)?;
        Ok(byte[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PipelineError::Runtime("reading ONNX file: malformed varint".into()))
    }

    fn key(&mut self) -> Result<(u64, u64)> {
        let key = self.varint()?;
        Ok((key >> 3, key & 7))
    }

    fn skip_bytes(&mut self, count: u64) -> Result<()> {
        let offset =
            i64::try_from(count).map_err(|_| PipelineError::Runtime("reading ONNX file: bad length".into()))?;
        self.inner.seek(SeekFrom::Current(offset)).map(|_| ()).map_err(Self::io)
    }

    fn skip(&mut self, wire: u64) -> Result<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.skip_bytes(8),
            2 => {
                let len = self.varint()?;
                self.skip_bytes(len)
            }
            5 => self.skip_bytes(4),
            _ => Err(PipelineError::Runtime(format!("reading ONNX file: unsupported wire type {wire}"))),
        }
    }

    /// Position and length of the first length-delimited `field` before `end`.
    fn find_field(&mut self, field: u64, end: u64) -> Result<Option<(u64, u64)>> {
        loop {
            let position = self.position()?;
            if position >= end {
                return Ok(None);
            }
            let (number, wire) = match self.key() {
                Ok(key) => key,
                Err(_) => return Ok(None),
            };
            if number == field && wire == 2 {
                let len = self.varint()?;
                return Ok(Some((self.position()?, len)));
            }
            self.skip(wire)?;
        }
    }
}

fn parse_tensor(bytes: &[u8]) -> Option<Initializer> {
    let mut reader = ProtoReader { inner: std::io::Cursor::new(bytes) };
    let (mut dims, mut data_type, mut values) = (Vec::new(), 0, Vec::new());
    while (reader.position().ok()? as usize) < bytes.len() {
        let (field, wire) = reader.key().ok()?;
        match (field, wire) {
            (TENSOR_DIMS, 0) => dims.push(reader.varint().ok()? as usize),
            (TENSOR_DIMS, 2) => {
                let end = reader.position().ok()? + reader.varint().ok()?;
                while reader.position().ok()? < end {
                    dims.push(reader.varint().ok()? as usize);
                }
            }
            (TENSOR_DATA_TYPE, 0) => data_type = reader.varint().ok()?,
            (TENSOR_RAW_DATA, 2) | (TENSOR_FLOAT_DATA, 2) => {
                let len = reader.varint().ok()? as usize;
                let start = reader.position().ok()? as usize;
                let raw = bytes.get(start..start + len)?;
                values = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                reader.skip_bytes(len as u64).ok()?;
            }
            _ => reader.skip(wire).ok()?,
        }
    }
    let count: usize = dims.iter().product();
    (data_type == FLOAT && count == values.len()).then_some(Initializer { dims, values })
}
