"""The one place that swaps TensorBoard's pure-Python CRC32C for a native one.

Without TensorFlow, TensorBoard computes the masked CRC32C of every event record in pure
Python: about 0.1 s per MB written (``tensorboard.summary.writer.record_writer``, used by
``torch.utils.tensorboard``) and 0.3 s per MB read (``PyRecordReader`` of the
``--load_fast=false`` loader and of ``tb_featmap.read``). google-crc32c computes the same
checksum in C, so files and the records accepted or rejected stay exactly the same.
``tests/test_writers_contract.py`` fails loudly if TensorBoard moves these functions.
"""

__all__ = ["masked_crc32c", "install_for_writer", "install_for_reader"]


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC32C of ``data``, computed by google-crc32c."""
    import google_crc32c

    x = google_crc32c.value(data)
    return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _swap(module) -> bool:
    """Point ``module.masked_crc32c`` at the native one, unless it is someone else's."""
    current = module.masked_crc32c
    if current is masked_crc32c:
        return True
    if current.__module__ != "tensorboard.compat.tensorflow_stub.pywrap_tensorflow":
        return False  # for example TensorFlow's own, native already: leave it
    try:
        import google_crc32c
    except ImportError:
        return False
    if google_crc32c.implementation != "c":
        return False
    module.masked_crc32c = masked_crc32c
    return True


def install_for_writer() -> bool:
    """Native checksums for TensorBoard's event writer. Idempotent.

    Returns:
        Whether the native checksum is in use.
    """
    from tensorboard.summary.writer import record_writer

    return _swap(record_writer)


def install_for_reader() -> bool:
    """Native checksums for TensorBoard's Python event-file reader. Idempotent.

    Returns:
        Whether the native checksum is in use.
    """
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

    return _swap(pywrap_tensorflow)
