using System.IO.MemoryMappedFiles;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.SafeTensors;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DType">safetensors dtype string: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL.</param>
/// <param name="Shape">Dimensions.</param>
/// <param name="Begin">Start of the data, relative to the end of the header.</param>
/// <param name="End">End of the data (exclusive).</param>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// A memory-mapped safetensors file (8-byte little-endian header length, JSON header, raw little-endian data).
/// Tensors are copied straight from the mapping into their own storage: the model is never held twice in memory.
/// Only safetensors is read: pickled checkpoints (.bin, .pt, .pth) are refused because loading them can run code.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    private const long MaxHeader = 100L * 1024 * 1024;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly long _dataStart;

    private SafeTensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long dataStart,
        Dictionary<string, SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        _map = map;
        _view = view;
        _dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>Entries by name.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <exception cref="InvalidDataException">The file is not safetensors, or its header is inconsistent.</exception>
    public static SafeTensorsFile Open(string path)
    {
        RefusePickle(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"{path} does not exist; expected a .safetensors file.", path);
        if (info.Length < 8) throw new InvalidDataException($"{path}: {info.Length} bytes is too short for a safetensors file.");
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        try
        {
            long headerLength = view.ReadInt64(0);
            if (headerLength <= 0 || headerLength > MaxHeader || 8 + headerLength > info.Length)
                throw new InvalidDataException($"{path}: header length {headerLength} is impossible for a {info.Length}-byte file; not a safetensors file.");
            var header = new byte[headerLength];
            view.ReadArray(8, header, 0, header.Length);
            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            long dataLength = info.Length - 8 - headerLength;
            try
            {
                using var doc = JsonDocument.Parse(header);
                foreach (var entry in doc.RootElement.EnumerateObject())
                {
                    if (entry.Name == "__metadata__")
                    {
                        foreach (var m in entry.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                        continue;
                    }
                    string dtype = entry.Value.GetProperty("dtype").GetString() ?? "";
                    long[] shape = entry.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
                    var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
                    long expected = shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype, path, entry.Name);
                    if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength || offsets[1] - offsets[0] != expected)
                        throw new InvalidDataException($"{path}: tensor '{entry.Name}' has data_offsets [{string.Join(", ", offsets)}] but {dtype}{Shape(shape)} needs {expected} bytes within {dataLength}.");
                    tensors[entry.Name] = new SafeTensorInfo(entry.Name, dtype, shape, offsets[0], offsets[1]);
                }
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new InvalidDataException($"{path}: the safetensors header is not valid JSON of the expected form ({ex.Message}).", ex);
            }
            return new SafeTensorsFile(path, map, view, 8 + headerLength, tensors, metadata);
        }
        catch
        {
            view.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>Copies a tensor out of the file onto <paramref name="device"/>, converting to <paramref name="dtype"/> if given.</summary>
    public Tensor Load(string name, Device? device = null, ScalarType? dtype = null)
    {
        if (!Tensors.TryGetValue(name, out var info))
            throw new KeyNotFoundException($"{Path}: no tensor named '{name}'.");
        var stored = ToScalarType(info.DType, Path, name);
        var cpu = empty(info.Shape, stored); // [shape] stored dtype, CPU: the one copy of the data
        long size = info.End - info.Begin;
        if (size > 0)
        {
            // Copy in slices of ≤ 1 GiB along dim 0 (Span lengths are int).
            var flat = cpu.view(-1);
            long elementSize = size / Math.Max(1, flat.shape[0]);
            long perSlice = Math.Max(1, (1L << 30) / Math.Max(1, elementSize));
            for (long start = 0; start < flat.shape[0]; start += perSlice)
            {
                long count = Math.Min(perSlice, flat.shape[0] - start);
                using var slice = flat.narrow(0, start, count);
                CopyFromMap(_dataStart + info.Begin + start * elementSize, slice.bytes);
            }
        }
        if ((device is null || device.type == DeviceType.CPU) && (dtype is null || dtype == stored)) return cpu;
        using (cpu)
            return cpu.to(dtype ?? stored, device ?? CPU);
    }

    private unsafe void CopyFromMap(long offset, Span<byte> destination)
    {
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        try
        {
            new ReadOnlySpan<byte>(pointer + _view.PointerOffset + offset, destination.Length).CopyTo(destination);
        }
        finally
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _view.Dispose();
        _map.Dispose();
    }

    internal static void RefusePickle(string path)
    {
        string ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".bin" or ".pt" or ".pth" or ".ckpt" or ".pkl")
            throw new InvalidDataException($"{path}: pickled PyTorch checkpoints are not loaded (they can run arbitrary code); convert the model to safetensors (transformers: save_pretrained(..., safe_serialization=True)).");
    }

    internal static ScalarType ToScalarType(string dtype, string path, string name) => dtype switch
    {
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{path}: tensor '{name}' has dtype '{dtype}'; supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL."),
    };

    internal static string FromScalarType(ScalarType type) => type switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"dtype {type} has no safetensors name"),
    };

    private static long ElementSize(string dtype, string path, string name) => dtype switch
    {
        "F64" or "I64" => 8,
        "F32" or "I32" => 4,
        "F16" or "BF16" or "I16" => 2,
        "I8" or "U8" or "BOOL" => 1,
        _ => throw new InvalidDataException($"{path}: tensor '{name}' has dtype '{dtype}'; supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL."),
    };

    private static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";
}
