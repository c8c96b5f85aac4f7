using PrefPipe.Models.Decoders;
using PrefPipe.Models.Runtime;
using PrefPipe.Models.SafeTensors;
using static TorchSharp.torch;

namespace PrefPipe.Models.Lora;

/// <summary>Loading model folders that may be PEFT adapters, and merging an adapter into a full checkpoint.</summary>
public static class AdapterModels
{
    /// <summary>
    /// Loads a model folder; when it is a PEFT adapter (adapter_config.json), loads its base (base_model_name_or_path, or
    /// <paramref name="baseDirectory"/> when given) and merges the adapter in. Every stage that reads a policy reads a
    /// LoRA run's checkpoint this way.
    /// </summary>
    /// <param name="directory">A Hugging Face model folder or a PEFT adapter folder.</param>
    /// <param name="device">Target device; default CUDA when available, else CPU.</param>
    /// <param name="dtype">Parameter dtype; default float32 on CPU, bfloat16 on CUDA.</param>
    /// <param name="baseDirectory">The base model for an adapter, instead of the one its config names.</param>
    public static CausalLM Load(string directory, Device? device = null, ScalarType? dtype = null, string? baseDirectory = null)
    {
        if (!AdapterConfig.IsAdapter(directory)) return CausalLM.Load(directory, device, dtype);
        string baseDir = baseDirectory ?? AdapterConfig.Read(directory).ResolveBase(directory);
        var model = Load(baseDir, device, dtype);
        try
        {
            using var adapter = LoraAdapter.Load(model, directory);
            adapter.Merge();
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>The full model folder whose config, tokenizer and generation settings describe <paramref name="directory"/>: itself, or an adapter's base (an adapter folder has no config.json).</summary>
    public static string ModelFolder(string directory) =>
        AdapterConfig.IsAdapter(directory) ? ModelFolder(AdapterConfig.Read(directory).ResolveBase(directory)) : directory;

    /// <summary>
    /// Writes the base of <paramref name="adapterDirectory"/> with the adapter merged in to <paramref name="outputDirectory"/>:
    /// a full Hugging Face checkpoint (config.json, safetensors in the base's dtype, tokenizer and generation files).
    /// </summary>
    /// <param name="baseDirectory">The base model folder (a full checkpoint).</param>
    /// <param name="adapterDirectory">The PEFT adapter.</param>
    /// <param name="outputDirectory">Created; the model's files are replaced.</param>
    /// <param name="device">Where to merge; default CPU.</param>
    /// <param name="maxShardBytes">Largest weight file; above it the weights are sharded with an index (transformers' max_shard_size).</param>
    public static void MergeToFolder(string baseDirectory, string adapterDirectory, string outputDirectory, Device? device = null,
        long maxShardBytes = SafeTensorsWriter.DefaultMaxShardBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(baseDirectory);
        ArgumentException.ThrowIfNullOrEmpty(outputDirectory);
        TorchRuntime.EnsureLoaded();
        if (Path.GetFullPath(baseDirectory) == Path.GetFullPath(outputDirectory))
            throw new ArgumentException($"the output folder {outputDirectory} is the base model's folder: write the merged model elsewhere.", nameof(outputDirectory));
        ScalarType dtype = StoredDtype(baseDirectory);
        using var model = Load(baseDirectory, device ?? CPU, dtype);
        using (var adapter = LoraAdapter.Load(model, adapterDirectory)) adapter.Merge();
        Directory.CreateDirectory(outputDirectory);
        foreach (string stale in Directory.EnumerateFiles(outputDirectory, "*.safetensors").Append(Path.Combine(outputDirectory, "model.safetensors.index.json")))
            File.Delete(stale);
        model.Save(outputDirectory, maxShardBytes);
        foreach (string file in Directory.EnumerateFiles(baseDirectory))
        {
            string name = Path.GetFileName(file);
            if (name == "config.json" || name.EndsWith(".safetensors", StringComparison.Ordinal) || name == "model.safetensors.index.json"
                || name == AdapterConfig.FileName || name == "trainer_state.json") continue;
            File.Copy(file, Path.Combine(outputDirectory, name), overwrite: true);
        }
    }

    /// <summary>The dtype a checkpoint's weights are stored in (its first floating tensor's), so a merge writes what it read.</summary>
    private static ScalarType StoredDtype(string directory)
    {
        if (AdapterConfig.IsAdapter(directory)) return ScalarType.Float32;
        using var weights = ModelWeights.Open(directory);
        string? stored = weights.Names.Select(n => weights.Info(n).DType).FirstOrDefault(d => d is "BF16" or "F16" or "F32");
        return stored switch { "BF16" => ScalarType.BFloat16, "F16" => ScalarType.Float16, _ => ScalarType.Float32 };
    }
}
