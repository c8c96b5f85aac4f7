using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace PrefPipe.Trainer.Logging;

/// <summary>
/// Writes TensorBoard event files (<c>events.out.tfevents.*</c>): TFRecord framing (length, masked CRC-32C of the length,
/// the record, masked CRC-32C of the record) around <c>tensorflow.Event</c> protobufs, the first holding
/// <c>file_version = "brain.Event:2"</c>, then one event per scalar with <c>summary.value[0] = {tag, simple_value}</c>, as
/// PyTorch's and transformers' <c>SummaryWriter.add_scalar</c> write them. Every record is flushed as it is written, so
/// <c>tensorboard --logdir</c> shows the curves while training runs.
/// </summary>
/// <remarks>
/// Not TorchSharp's <c>torch.utils.tensorboard.SummaryWriter</c>: in TorchSharp 0.107 its <c>add_scalar</c> records a wall
/// time of 0 unless the caller passes one (the default argument is 0, not null), takes wall times as float32 (128 s
/// resolution at today's epoch seconds), and stamps the file-version event with .NET ticks instead of Unix seconds, so
/// TensorBoard's relative and wall-time axes are wrong. The encoding here is the few protobuf fields an event needs.
/// </remarks>
internal sealed class TensorBoardEventWriter : IDisposable
{
    /// <summary>The subfolder of a training's output folder that holds its event files.</summary>
    public const string Folder = "tensorboard";

    private static int _files;
    private readonly FileStream _stream;
    private readonly TimeProvider _clock;

    /// <summary>Creates <paramref name="logDirectory"/> and a new event file in it, named as PyTorch names them.</summary>
    public TensorBoardEventWriter(string logDirectory, TimeProvider? clock = null)
    {
        _clock = clock ?? TimeProvider.System;
        Directory.CreateDirectory(logDirectory);
        long seconds = _clock.GetUtcNow().ToUnixTimeSeconds();
        Path = System.IO.Path.Combine(logDirectory, $"events.out.tfevents.{seconds}.{Environment.MachineName}.{Environment.ProcessId}.{Interlocked.Increment(ref _files)}");
        _stream = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        Write(Event(WallTime(), step: null, fileVersion: "brain.Event:2", tag: null, value: 0));
    }

    /// <summary>The event file.</summary>
    public string Path { get; }

    /// <summary>One event per value, tagged <paramref name="prefix"/> + name (transformers' TensorBoard callback logs training
    /// metrics as <c>train/NAME</c>).</summary>
    public void AddScalars(long step, IEnumerable<KeyValuePair<string, double>> values, string prefix = "train/")
    {
        ArgumentNullException.ThrowIfNull(values);
        double wallTime = WallTime();
        foreach (var (name, value) in values) Write(Event(wallTime, step, fileVersion: null, prefix + name, (float)value));
        _stream.Flush();
    }

    public void Dispose() => _stream.Dispose();

    private double WallTime() => _clock.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0;

    private void Write(byte[] record)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)record.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc32C(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc32C(record));
        _stream.Write(header);
        _stream.Write(record);
        _stream.Write(footer);
        _stream.Flush();
    }

    /// <summary>tensorflow.Event: wall_time (1, double), step (2, int64), file_version (3, string), summary (5, Summary).
    /// Summary: value (1, repeated Value); Value: tag (1, string), simple_value (2, float).</summary>
    private static byte[] Event(double wallTime, long? step, string? fileVersion, string? tag, float value)
    {
        using var e = new MemoryStream();
        e.WriteByte(0x09); // field 1, fixed64
        Span<byte> eight = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(eight, wallTime);
        e.Write(eight);
        if (step is { } s)
        {
            e.WriteByte(0x10); // field 2, varint
            Varint(e, (ulong)s);
        }
        if (fileVersion is not null) LengthDelimited(e, 0x1A, Encoding.UTF8.GetBytes(fileVersion)); // field 3
        if (tag is not null)
        {
            using var v = new MemoryStream();
            LengthDelimited(v, 0x0A, Encoding.UTF8.GetBytes(tag)); // Value.tag
            v.WriteByte(0x15); // Value.simple_value, fixed32
            Span<byte> four = stackalloc byte[4];
            BinaryPrimitives.WriteSingleLittleEndian(four, value);
            v.Write(four);
            using var summary = new MemoryStream();
            LengthDelimited(summary, 0x0A, v.ToArray()); // Summary.value
            LengthDelimited(e, 0x2A, summary.ToArray()); // Event.summary (field 5)
        }
        return e.ToArray();
    }

    private static void LengthDelimited(Stream s, byte key, byte[] bytes)
    {
        s.WriteByte(key);
        Varint(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    private static void Varint(Stream s, ulong v)
    {
        while (v >= 0x80)
        {
            s.WriteByte((byte)(v | 0x80));
            v >>= 7;
        }
        s.WriteByte((byte)v);
    }

    /// <summary>CRC-32C (Castagnoli), as TFRecord uses it: initial value and final XOR 0xFFFFFFFF.</summary>
    internal static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    /// <summary>TFRecord's masked CRC: rotated right by 15 bits plus 0xa282ead8.</summary>
    internal static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }
}
