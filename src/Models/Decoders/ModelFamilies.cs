using System.Text.Json;
using PrefPipe.Models.Decoders.Families.Gemma;
using PrefPipe.Models.Decoders.Families.Llama;
using PrefPipe.Models.Decoders.Families.Olmo2;
using PrefPipe.Models.Decoders.Families.Phi3;
using PrefPipe.Models.Decoders.Families.Qwen3;

namespace PrefPipe.Models.Decoders;

/// <summary>
/// The one registration of model families: config.json's model_type → the family's config reader. A family lives in
/// its own folder under Families/ (a <see cref="DecoderConfig"/> record that reads its keys and builds its layers from the
/// shared modules); adding one is that folder plus one line here.
/// </summary>
public static class ModelFamilies
{
    private static readonly (string ModelType, Func<ConfigReader, DecoderConfig> Read)[] Families =
    [
        ("llama", LlamaConfig.Read),
        ("qwen2", LlamaConfig.Read),
        ("mistral", LlamaConfig.Read),
        ("qwen3", Qwen3Config.Read),
        ("gemma2", Gemma2Config.Read),
        ("gemma3_text", Gemma3TextConfig.Read),
        ("phi3", Phi3Config.Read),
        ("olmo2", Olmo2Config.Read),
    ];

    /// <summary>model_type values a model folder may have.</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } = Families.Select(f => f.ModelType).ToArray();

    /// <summary>Parses a config.json object with its family's reader; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">Unknown model_type, or a missing or invalid field (named).</exception>
    public static DecoderConfig Parse(JsonElement root, string source)
    {
        var reader = new ConfigReader(root, source);
        foreach (var (modelType, read) in Families)
            if (modelType == reader.ModelType) return read(reader);
        string hint = reader.ModelType == "gemma3"
            ? " A multimodal Gemma 3 folder (model_type gemma3 with a text_config) is not a text-only causal LM; use a gemma3_text checkpoint (Gemma 3 1B, or the text model extracted)."
            : "";
        throw reader.Error($"model_type '{reader.ModelType}' (architectures: {reader.Architectures}) is not supported; supported: {string.Join(", ", SupportedModelTypes)}.{hint}");
    }
}
