using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace PrefPipe.Models.SafeTensors;

/// <summary>Writes safetensors files that transformers and the safetensors library read.</summary>
public static partial class SafeTensorsWriter
{
    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true, IndentSize = 2 };

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

    /// <summary>transformers' default <c>max_shard_size</c>, "5GB": 5 × 10⁹ bytes.</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>
    /// A shard size as transformers' <c>max_shard_size</c> takes it: a number of bytes ("1000000"), or a number with a
    /// decimal unit (KB, MB, GB, TB: powers of 1000) or a binary one (KiB, MiB, GiB, TiB: powers of 1024), e.g. "5GB".
    /// </summary>
    /// <exception cref="FormatException">Not such a size, or not positive (names the text and what is expected).</exception>
    public static long ParseShardSize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var m = System.Text.RegularExpressions.Regex.Match(text.Trim(), @"^(\d+)\s*([KMGT]i?B)?$", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
        if (!m.Success || !long.TryParse(m.Groups[1].Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n) || n <= 0)
            throw new FormatException($"max shard size '{text}': expected a positive number of bytes, or a number with KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. 5GB.");
        string unit = m.Groups[2].Value.ToUpperInvariant();
        long scale = unit.Length == 0 ? 1 : Pow(unit.Contains('I', StringComparison.Ordinal) ? 1024 : 1000, "KMGT".IndexOf(unit[0], StringComparison.Ordinal) + 1);
        return checked(n * scale);

        static long Pow(long b, int e)
        {
            long r = 1;
            for (int i = 0; i < e; i++) r *= b;
            return r;
        }
    }

    /// <summary>
    /// Writes the weights as save_pretrained does: one model.safetensors when they fit in <paramref name="maxShardBytes"/>,
    /// else model-00001-of-0000N.safetensors shards plus model.safetensors.index.json ({"metadata": {"total_size"},
    /// "weight_map"}). Tensors go to shards in <paramref name="tensors"/>' order (the model's state-dict order) and are
    /// never split: a shard is closed when the next tensor would take it past the limit, and a tensor larger than the
    /// limit gets a shard of its own, as huggingface_hub's split_torch_state_dict_into_shards does. Weight files a previous
    /// save left in the folder are removed first, so the folder never mixes two layouts.
    /// </summary>
    /// <returns>The weight files written, in order.</returns>
    public static IReadOnlyList<string> WriteSharded(string directory, IReadOnlyDictionary<string, Tensor> tensors, long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        var shards = new List<Dictionary<string, Tensor>>();
        var current = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        long currentBytes = 0, total = 0;
        foreach (var (name, tensor) in tensors)
        {
            long size = tensor.numel() * tensor.element_size();
            total += size;
            if (size > maxShardBytes)
            {
                shards.Add(new Dictionary<string, Tensor>(StringComparer.Ordinal) { [name] = tensor });
                continue;
            }
            if (currentBytes + size > maxShardBytes)
            {
                shards.Add(current);
                current = new Dictionary<string, Tensor>(StringComparer.Ordinal);
                currentBytes = 0;
            }
            current[name] = tensor;
            currentBytes += size;
        }
        if (current.Count > 0) shards.Add(current);

        Directory.CreateDirectory(directory);
        foreach (string stale in Directory.EnumerateFiles(directory, "model*.safetensors").Append(Path.Combine(directory, IndexFile)))
            if (IsWeightFile(Path.GetFileName(stale)) && File.Exists(stale)) File.Delete(stale);
        if (shards.Count <= 1)
        {
            Write(Path.Combine(directory, "model.safetensors"), tensors, metadata);
            return ["model.safetensors"];
        }
        var files = new List<string>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            Write(Path.Combine(directory, file), shards[i], metadata);
            files.Add(file);
            foreach (string name in shards[i].Keys) weightMap[name] = file;
        }
        // transformers writes json.dumps(index, indent=2, sort_keys=True) + "\n".
        var index = new SortedDictionary<string, object>(StringComparer.Ordinal)
        {
            ["metadata"] = new SortedDictionary<string, object>(StringComparer.Ordinal) { ["total_size"] = total },
            ["weight_map"] = weightMap,
        };
        string indexPath = Path.Combine(directory, IndexFile);
        var json = JsonSerializer.Serialize(index, IndentedJson).Replace("\r\n", "\n", StringComparison.Ordinal) + "\n";
        File.WriteAllText(indexPath + ".tmp", json, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        File.Move(indexPath + ".tmp", indexPath, overwrite: true);
        return files;
    }

    /// <summary>The index of a sharded model folder.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Whether a file name is part of a model's weights: model.safetensors, a model-NNNNN-of-NNNNN shard, or the index.</summary>
    public static bool IsWeightFile(string fileName) =>
        fileName is "model.safetensors" or IndexFile || ShardName().IsMatch(fileName);

    [System.Text.RegularExpressions.GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$")]
    private static partial System.Text.RegularExpressions.Regex ShardName();
}
