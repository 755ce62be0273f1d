// SPDX-License-Identifier: MPL-2.0

//! Raw audio buffers into the front-end, as the element feeds it. Public so that tools (the
//! timeline example's feature dump) compute exactly what the element computes.

use byte_slice_cast::{AsMutByteSlice, AsSliceOf, FromByteSlice, ToMutByteSlice};

use crate::frontend::{Frontend, Sample, Window};

/// Feeds `bytes`, interleaved samples of `format` in the host's byte order (what the element's
/// caps ask for), to `frontend`. Returns the format back for one the element does not accept.
pub fn push(
    frontend: &mut Frontend,
    format: gst_audio::AudioFormat,
    bytes: &[u8],
    out: &mut Vec<Window>,
) -> Result<(), gst_audio::AudioFormat> {
    match format {
        gst_audio::AUDIO_FORMAT_S16 => push_samples::<i16>(frontend, bytes, out),
        gst_audio::AUDIO_FORMAT_S32 => push_samples::<i32>(frontend, bytes, out),
        gst_audio::AUDIO_FORMAT_F32 => push_samples::<f32>(frontend, bytes, out),
        gst_audio::AUDIO_FORMAT_F64 => push_samples::<f64>(frontend, bytes, out),
        other => return Err(other),
    }
    Ok(())
}

/// Memory that is not aligned for `S` is copied first.
fn push_samples<S>(frontend: &mut Frontend, bytes: &[u8], out: &mut Vec<Window>)
where
    S: Sample + Default + FromByteSlice + ToMutByteSlice,
{
    let whole = &bytes[..bytes.len() / size_of::<S>() * size_of::<S>()];
    match whole.as_slice_of::<S>() {
        Ok(samples) => frontend.push(samples, out),
        Err(_) => {
            let mut owned = vec![S::default(); whole.len() / size_of::<S>()];
            owned.as_mut_byte_slice().copy_from_slice(whole);
            frontend.push(&owned, out);
        }
    }
}
