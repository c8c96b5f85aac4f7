using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace PrefPipe.Models.SafeTensors;

/// <summary>Writes safetensors files that transformers and the safetensors library read.</summary>
public static class SafeTensorsWriter
{
    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    /// <summary>
    /// Writes <paramref name="tensors"/> (in name order, as the safetensors library does) with optional metadata.
    /// Written to a temporary name and renamed: a reader never sees half a file.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        var sizes = new List<long>();
        foreach (string name in names)
        {
            var t = tensors[name];
            long size = t.numel() * t.element_size();
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = SafeTensorsFile.FromScalarType(t.dtype),
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + size },
            };
            sizes.Add(size);
            offset += size;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        // Pad the header with spaces to a multiple of 8 so the data is aligned, as the reference writer does.
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[padded];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < padded; i++) headerBytes[i] = (byte)' ';

        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + $".{Environment.ProcessId}.tmp";
        using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Span<byte> length = stackalloc byte[8];
            BitConverter.TryWriteBytes(length, (long)padded);
            stream.Write(length);
            stream.Write(headerBytes);
            foreach (string name in names)
            {
                using var scope = NewDisposeScope();
                var cpu = tensors[name].detach().to(CPU).contiguous().view(-1); // [numel] same dtype, CPU
                long per = Math.Max(1, (1L << 30) / Math.Max(1, cpu.element_size()));
                for (long start = 0; start < cpu.shape[0]; start += per)
                    stream.Write(cpu.narrow(0, start, Math.Min(per, cpu.shape[0] - start)).bytes);
            }
            stream.Flush(flushToDisk: true);
        }
        File.Move(tmp, full, overwrite: true);
    }

    /// <summary>Writes shards of at most <paramref name="maxShardBytes"/> plus model.safetensors.index.json, as save_pretrained does.</summary>
    public static IReadOnlyList<string> WriteSharded(string directory, IReadOnlyDictionary<string, Tensor> tensors, long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var shards = new List<Dictionary<string, Tensor>> { new(StringComparer.Ordinal) };
        long current = 0;
        foreach (string name in tensors.Keys.Order(StringComparer.Ordinal))
        {
            long size = tensors[name].numel() * tensors[name].element_size();
            if (current > 0 && current + size > maxShardBytes)
            {
                shards.Add(new Dictionary<string, Tensor>(StringComparer.Ordinal));
                current = 0;
            }
            shards[^1][name] = tensors[name];
            current += size;
        }
        if (shards.Count == 1)
        {
            Write(Path.Combine(directory, "model.safetensors"), tensors, metadata);
            return ["model.safetensors"];
        }
        var files = new List<string>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long total = 0;
        for (int i = 0; i < shards.Count; i++)
        {
            string file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            Write(Path.Combine(directory, file), shards[i], metadata);
            files.Add(file);
            foreach (var (name, t) in shards[i]) { weightMap[name] = file; total += t.numel() * t.element_size(); }
        }
        var index = new { metadata = new { total_size = total }, weight_map = weightMap };
        string indexPath = Path.Combine(directory, "model.safetensors.index.json");
        File.WriteAllText(indexPath + ".tmp", JsonSerializer.Serialize(index, IndentedJson), Encoding.UTF8);
        File.Move(indexPath + ".tmp", indexPath, overwrite: true);
        return files;
    }
}
