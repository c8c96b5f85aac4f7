using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrefPipe.Models.Lora;

/// <summary>
/// PEFT's adapter_config.json for a LoRA adapter on a causal LM: what we write (every field PEFT's <c>LoraConfig</c>
/// saves, with its defaults) and what we read back from files PEFT wrote. A setting we cannot honour (DoRA, a bias,
/// fan_in_fan_out, per-module ranks, modules_to_save, layer selection) is refused naming the field, never ignored.
/// </summary>
public sealed record AdapterConfig
{
    /// <summary>The file name inside an adapter folder.</summary>
    public const string FileName = "adapter_config.json";

    /// <summary>The weights' file name inside an adapter folder.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>The base model: its folder (absolute, as written by a training run) or a Hub id.</summary>
    public string? BaseModelNameOrPath { get; init; }

    /// <summary>The adapter options: r, lora_alpha, lora_dropout, target_modules, use_rslora.</summary>
    public required LoraOptions Lora { get; init; }

    /// <summary>Whether <see cref="LoraOptions.TargetModules"/> came as one string (a regular expression the full module name must match), as PEFT allows.</summary>
    public bool TargetModulesIsRegex { get; init; }

    /// <summary>Whether <paramref name="directory"/> holds a PEFT adapter.</summary>
    public static bool IsAdapter(string directory) => File.Exists(Path.Combine(directory, FileName));

    /// <summary>Reads and checks <paramref name="directory"/>/adapter_config.json.</summary>
    /// <exception cref="InvalidDataException">Not a LoRA adapter for a causal LM, or a setting this trainer cannot apply (named).</exception>
    public static AdapterConfig Read(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) throw new InvalidDataException($"{directory}: no {FileName}, so this is not a PEFT adapter folder.");
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({ex.Message}).", ex);
        }
        string? Str(string key) => json[key] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        bool Bool(string key) => json[key] is JsonValue v && v.TryGetValue(out bool b) && b;
        bool IsSet(string key) => json[key] switch
        {
            null => false,
            JsonObject o => o.Count > 0,
            JsonArray a => a.Count > 0,
            JsonValue v when v.TryGetValue(out bool b) => b,
            _ => true,
        };
        double Number(string key, double fallback) => json[key] is JsonValue v && v.TryGetValue(out double d) ? d : fallback;

        var problems = new List<string>();
        if (Str("peft_type") is { } type && type != "LORA") problems.Add($"peft_type is '{type}', only LORA is supported");
        if (Str("task_type") is { } task && task != "CAUSAL_LM") problems.Add($"task_type is '{task}', only CAUSAL_LM is supported");
        if (Str("bias") is { } bias && bias != "none") problems.Add($"bias is '{bias}', only 'none' is supported");
        foreach (string flag in new[] { "use_dora", "fan_in_fan_out", "lora_bias" })
            if (Bool(flag)) problems.Add($"{flag} is true, which is not supported");
        foreach (string key in new[] { "rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform", "layer_replication", "exclude_modules", "trainable_token_indices" })
            if (IsSet(key)) problems.Add($"{key} is set ({json[key]!.ToJsonString()}), which is not supported");

        int r = json["r"] is JsonValue rv && rv.TryGetValue(out int ri) ? ri : 8;
        double alpha = Number("lora_alpha", 8);
        var targets = new List<string>();
        bool regex = false;
        switch (json["target_modules"])
        {
            case JsonArray array:
                targets.AddRange(array.Select(n => n is JsonValue v && v.TryGetValue(out string? s) ? s : null).Where(s => s is not null)!);
                break;
            case JsonValue v when v.TryGetValue(out string? s):
                targets.Add(s);
                regex = s != LoraTargets.AllLinear;
                break;
            default:
                problems.Add("target_modules is missing (PEFT writes the list of adapted module names)");
                break;
        }
        if (problems.Count > 0) throw new InvalidDataException($"{path}: {string.Join("; ", problems)}.");
        var lora = new LoraOptions { R = r, Alpha = alpha, Dropout = Number("lora_dropout", 0), TargetModules = targets, UseRslora = Bool("use_rslora") };
        try
        {
            lora.Validate(path);
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException ex)
        {
            throw new InvalidDataException($"{path}: {string.Join(" ", ex.Failures)}", ex);
        }
        return new AdapterConfig { BaseModelNameOrPath = Str("base_model_name_or_path"), Lora = lora, TargetModulesIsRegex = regex };
    }

    /// <summary>Writes adapter_config.json as PEFT's <c>save_pretrained</c> does (every LoraConfig field, sorted keys).</summary>
    public void Write(string directory)
    {
        var targets = new JsonArray([.. Lora.TargetModules.Order(StringComparer.Ordinal).Select(t => (JsonNode)JsonValue.Create(t))]);
        var fields = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["alpha_pattern"] = new JsonObject(),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = BaseModelNameOrPath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layer_replication"] = null,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["lora_alpha"] = AsNumber(Lora.Alpha),
            ["lora_bias"] = false,
            ["lora_dropout"] = Lora.Dropout,
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = Lora.R,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = TargetModulesIsRegex ? JsonValue.Create(Lora.TargetModules[0]) : targets,
            ["task_type"] = "CAUSAL_LM",
            ["use_dora"] = false,
            ["use_rslora"] = Lora.UseRslora,
        };
        var json = new JsonObject();
        foreach (var (k, v) in fields) json[k] = v;
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, FileName);
        File.WriteAllText(path + ".tmp", json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>lora_alpha as PEFT writes it: an integer when it is one.</summary>
    private static JsonValue AsNumber(double value) =>
        value == Math.Floor(value) && Math.Abs(value) < int.MaxValue ? JsonValue.Create((int)value) : JsonValue.Create(value);

    /// <summary>The base model folder of an adapter: base_model_name_or_path as an absolute folder, or relative to the adapter folder.</summary>
    /// <exception cref="InvalidDataException">The field is missing or names no folder with a config.json here.</exception>
    public string ResolveBase(string adapterDirectory)
    {
        if (string.IsNullOrEmpty(BaseModelNameOrPath))
            throw new InvalidDataException($"{Path.Combine(adapterDirectory, FileName)}: base_model_name_or_path is empty; pass the base model folder (--model).");
        foreach (string candidate in new[] { BaseModelNameOrPath, Path.Combine(adapterDirectory, BaseModelNameOrPath) })
            if (Directory.Exists(candidate) && (File.Exists(Path.Combine(candidate, "config.json")) || IsAdapter(candidate)))
                return Path.GetFullPath(candidate);
        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
            $"{Path.Combine(adapterDirectory, FileName)}: base_model_name_or_path '{BaseModelNameOrPath}' is not a model folder on this machine; pass the base model folder (--model)."));
    }
}
