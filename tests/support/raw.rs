//! gRPC calls with raw message bytes: any method by path, with bodies a generated client
//! could never send (empty, random, truncated, oversized). The role matrix and the
//! malformed-input corpus use it.

use bytes::{Buf as _, BufMut as _};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A codec that passes message bytes through untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// Encodes bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

/// Decodes to the bytes as they came.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Calls `method` (`package.Service/Method`) with `bodies` as the request messages (one for
/// a unary call) and `token` (`None`: no token), and collects the answer: the response
/// messages, or the status. Works for every kind of method, since on the wire a unary call is
/// a stream of one.
pub async fn call(
    channel: Channel,
    method: &str,
    token: Option<&str>,
    bodies: Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, Status> {
    let mut client = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    client
        .ready()
        .await
        .map_err(|error| Status::unavailable(format!("not ready: {error}")))?;
    let mut request = tonic::Request::new(tokio_stream::iter(bodies));
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("the token is not ASCII"))?;
        request.metadata_mut().insert("authorization", value);
    }
    let path = format!("/{method}")
        .parse()
        .map_err(|_| Status::invalid_argument(format!("{method} is not a path")))?;
    let mut stream = client
        .streaming(request, path, RawCodec)
        .await?
        .into_inner();
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + STREAM_READ_LIMIT;
    while let Ok(next) = tokio::time::timeout_at(deadline, stream.message()).await {
        match next? {
            Some(message) => messages.push(message),
            None => break,
        }
    }
    Ok(messages)
}

/// How long [`call`] reads a stream that does not end by itself.
pub const STREAM_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a status says the caller was refused for who it is (no token, unknown token,
/// wrong role) rather than answered.
pub fn is_refused_for_identity(code: Code) -> bool {
    matches!(code, Code::Unauthenticated | Code::PermissionDenied)
}
