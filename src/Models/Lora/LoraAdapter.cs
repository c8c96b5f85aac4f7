using System.Globalization;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Decoders.Modules;
using PrefPipe.Models.SafeTensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Lora;

/// <summary>
/// LoRA adapters on a loaded model, injected by module name (PEFT's <c>target_modules</c>) into its linear layers; the
/// model's own parameters are frozen and keep their dtype and names. <see cref="Enabled"/> switches every adapter off
/// and on (the DPO-family and PPO reference is the base with the adapters off, so no second copy of the weights);
/// <see cref="Merge"/> folds them into the base weights. Files follow PEFT: adapter_config.json and
/// adapter_model.safetensors with keys <c>base_model.model.{module}.lora_A.weight</c> [r, in] and <c>….lora_B.weight</c> [out, r].
/// The adapter owns the generator its initial A and its dropout masks draw from (<see cref="Generator"/>): a training's
/// randomness is its own, whatever else the process runs, and its state goes into checkpoints so a resumed run draws what
/// an uninterrupted one does.
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    /// <summary>The prefix PEFT's PeftModelForCausalLM gives the base model's module names in saved adapters.</summary>
    public const string KeyPrefix = "base_model.model.";

    private readonly List<LoraLinear> _layers;
    private bool _enabled = true;
    private bool _merged;

    private LoraAdapter(CausalLM model, LoraOptions options, List<LoraLinear> layers, Generator generator)
    {
        Model = model;
        Options = options;
        _layers = layers;
        Generator = generator;
    }

    /// <summary>
    /// The adapter's own CPU generator (TorchSharp 0.107 makes no other kind): A's initial values, then every dropout mask,
    /// in forward order. Activation checkpointing replays it (<see cref="CausalLM.DropoutGenerator"/>); trainers save and
    /// restore its state (get_state / set_state) with their checkpoints.
    /// </summary>
    public Generator Generator { get; }

    /// <summary>The adapted model (not owned: dispose it yourself, after the adapter).</summary>
    public CausalLM Model { get; }

    /// <summary>r, alpha, dropout, targets, rsLoRA.</summary>
    public LoraOptions Options { get; }

    /// <summary>The adapted modules' full names, in model order.</summary>
    public IReadOnlyList<string> ModuleNames => [.. _layers.Select(l => l.ModuleName)];

    /// <summary>
    /// The module names to write as target_modules: each adapted layer's last name part (q_proj, …), as PEFT stores the set
    /// it resolved (all-linear included).
    /// </summary>
    public IReadOnlyList<string> ResolvedTargets => [.. _layers.Select(l => l.ModuleName[(l.ModuleName.LastIndexOf('.') + 1)..]).Distinct().Order(StringComparer.Ordinal)];

    /// <summary>Whether the adapters take part in forward passes. Off, the model computes the base exactly.</summary>
    public bool Enabled
    {
        get => _enabled;
        set
        {
            if (_merged && value) throw new InvalidOperationException("the adapters were merged into the base weights; they cannot be switched on again.");
            _enabled = value;
            foreach (var layer in _layers) layer.Host.Delta = value ? layer : null;
        }
    }

    /// <summary>Trainable parameters (lora_A, lora_B per layer) with PEFT's key names, for the optimizer and for saving.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> Parameters() =>
        _layers.SelectMany(l => new[] { (Key(l, "lora_A"), l.A), (Key(l, "lora_B"), l.B) });

    /// <summary>Trainable elements.</summary>
    public long ParameterCount => _layers.Sum(l => l.A.numel() + l.B.numel());

    private static string Key(LoraLinear layer, string part) => $"{KeyPrefix}{layer.ModuleName}.{part}.weight";

    /// <summary>
    /// Freezes <paramref name="model"/> and puts a fresh adapter (A as PEFT initialises it, B zero) on every linear layer
    /// <see cref="LoraOptions.TargetModules"/> selects.
    /// </summary>
    /// <param name="model">The model to adapt (frozen here).</param>
    /// <param name="options">r, alpha, dropout, targets, rsLoRA.</param>
    /// <param name="seed">Seeds the adapter's <see cref="Generator"/>: A's initial values and the dropout masks.</param>
    /// <param name="targetsAreRegex">Whether the single target is a regular expression (PEFT's string form).</param>
    /// <exception cref="ArgumentException">The targets select no linear layer (the model's linear layer names are listed).</exception>
    public static LoraAdapter Inject(CausalLM model, LoraOptions options, long seed, bool targetsAreRegex = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate("lora");
        var linears = model.named_modules().Where(m => m.module is HfLinear).Select(m => (m.name, Linear: (HfLinear)m.module)).ToList();
        var selected = linears.Where(l => LoraTargets.Matches([.. options.TargetModules], l.name, targetsAreRegex)).ToList();
        if (selected.Count == 0)
            throw new ArgumentException(
                $"target_modules [{string.Join(", ", options.TargetModules)}] select no linear layer of this {model.Config.ModelType} model; its linear layers are " +
                string.Join(", ", linears.Select(l => l.name[(l.name.LastIndexOf('.') + 1)..]).Distinct()) + " (or all-linear).", nameof(options));
        if (selected.Where(l => l.Linear.Delta is not null).Select(l => l.name).FirstOrDefault() is { } taken)
            throw new InvalidOperationException($"{taken} already has an adapter: one adapter per model.");
        if (options.Dropout > 0 && model.DropoutGenerator is not null)
            throw new InvalidOperationException("the model already has an adapter with dropout: a second one with dropout cannot share its recomputation (one adapter per model).");
        foreach (var (_, p) in model.named_parameters()) p.requires_grad = false;
        var generator = new Generator(unchecked((ulong)seed), CPU);
        var layers = selected.Select(l => new LoraLinear(l.name, l.Linear, options.R, options.Scaling, options.Dropout, generator)).ToList();
        var adapter = new LoraAdapter(model, options, layers, generator);
        adapter.Enabled = true;
        if (options.Dropout > 0) model.DropoutGenerator = generator;
        return adapter;
    }

    /// <summary>
    /// Applies the PEFT adapter in <paramref name="adapterDirectory"/> to <paramref name="model"/> (live, switchable); its
    /// generator is seeded with 0 (only dropout in training mode draws from it).
    /// </summary>
    /// <exception cref="InvalidDataException">The config cannot be applied, or the weights have unknown, missing or mis-shaped keys (named).</exception>
    public static LoraAdapter Load(CausalLM model, string adapterDirectory)
    {
        ArgumentNullException.ThrowIfNull(model);
        var config = AdapterConfig.Read(adapterDirectory);
        LoraAdapter adapter;
        try
        {
            adapter = Inject(model, config.Lora, seed: 0, config.TargetModulesIsRegex);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"{Path.Combine(adapterDirectory, AdapterConfig.FileName)}: {ex.Message}", ex);
        }
        try
        {
            adapter.LoadWeights(adapterDirectory);
        }
        catch
        {
            adapter.Dispose();
            throw;
        }
        return adapter;
    }

    /// <summary>
    /// Copies adapter_model.safetensors of <paramref name="adapterDirectory"/> into these adapters; fails naming every
    /// missing, mis-shaped and unknown key (an unknown key is a layer this config does not adapt, or something else than
    /// LoRA weights: a bias, an embedding adapter, a DoRA magnitude).
    /// </summary>
    public void LoadWeights(string adapterDirectory)
    {
        string path = Path.Combine(adapterDirectory, AdapterConfig.WeightsFileName);
        if (!File.Exists(path))
            throw new InvalidDataException($"{adapterDirectory}: {AdapterConfig.WeightsFileName} is missing (adapter_model.bin, PEFT's pickled format, is not read).");
        using var file = SafeTensorsFile.Open(path);
        var expected = Parameters().ToDictionary(p => p.Name, p => p.Parameter, StringComparer.Ordinal);
        var missing = expected.Keys.Where(k => !file.Tensors.ContainsKey(k)).ToList();
        var unknown = file.Tensors.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var wrong = expected.Where(kv => file.Tensors.TryGetValue(kv.Key, out var info) && !info.Shape.SequenceEqual(kv.Value.shape))
            .Select(kv => $"{kv.Key}: file [{string.Join(", ", file.Tensors[kv.Key].Shape)}], expected [{string.Join(", ", kv.Value.shape)}]").ToList();
        static string List(List<string> names, string separator) => string.Join(separator, names.Take(6)) + (names.Count > 6 ? $"{separator}… ({names.Count} in all)" : "");
        if (missing.Count > 0 || unknown.Count > 0 || wrong.Count > 0)
            throw new InvalidDataException($"{path}: the adapter weights do not match adapter_config.json and the model: " +
                (missing.Count > 0 ? $"missing {List(missing, ", ")}. " : "") +
                (wrong.Count > 0 ? $"wrong shape (r = {Options.R}): {List(wrong, "; ")}. " : "") +
                (unknown.Count > 0 ? $"unknown key(s) {List(unknown, ", ")} (expected {KeyPrefix}<module>.lora_A.weight / .lora_B.weight for the target modules)." : ""));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (name, parameter) in expected) parameter.copy_(file.Load(name, parameter.device, parameter.dtype));
    }

    /// <summary>Writes adapter_config.json and adapter_model.safetensors (float32, PEFT's keys) to <paramref name="directory"/>.</summary>
    /// <param name="directory">The adapter folder (created).</param>
    /// <param name="baseModelNameOrPath">The base model's folder, written as base_model_name_or_path.</param>
    public void Save(string directory, string baseModelNameOrPath)
    {
        Directory.CreateDirectory(directory);
        using var scope = NewDisposeScope();
        var tensors = Parameters().ToDictionary(p => p.Name, p => p.Parameter.detach().cpu(), StringComparer.Ordinal);
        SafeTensorsWriter.Write(Path.Combine(directory, AdapterConfig.WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var resolved = new LoraOptions { R = Options.R, Alpha = Options.Alpha, Dropout = Options.Dropout, UseRslora = Options.UseRslora, TargetModules = [.. ResolvedTargets] };
        new AdapterConfig { BaseModelNameOrPath = baseModelNameOrPath, Lora = resolved }.Write(directory);
    }

    /// <summary>
    /// Adds scaling · B·A to each adapted base weight (in the weight's dtype, as PEFT's merge does) and removes the
    /// adapters: the model then computes what it computed with them, with no adapter cost.
    /// </summary>
    public void Merge()
    {
        if (_merged) return;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            foreach (var layer in _layers)
            {
                var weight = layer.Host.Weight;
                weight.add_(layer.DeltaWeight().to(weight.dtype));
            }
        }
        Enabled = false;
        _merged = true;
    }

    /// <summary>A short description: layers, rank, scaling and trainable parameters.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"LoRA r={Options.R} alpha={Options.Alpha:G} scaling={Options.Scaling:G4} on {_layers.Count} layers ({string.Join(", ", ResolvedTargets)}), {ParameterCount:N0} trainable parameters");

    /// <summary>Removes the adapters from the model (when not merged) and frees their weights.</summary>
    public void Dispose()
    {
        foreach (var layer in _layers)
        {
            if (ReferenceEquals(layer.Host.Delta, layer)) layer.Host.Delta = null;
            layer.Dispose();
        }
        _layers.Clear();
        if (ReferenceEquals(Model.DropoutGenerator, Generator)) Model.DropoutGenerator = null;
        Generator.Dispose();
    }
}
