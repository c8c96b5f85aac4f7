using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using PrefPipe.Models.Lora;

namespace PrefPipe.Trainer.Ppo;

/// <summary>Options of the ppo stage (<c>training.ppo</c>); names follow TRL's PPOConfig in snake_case.</summary>
public sealed class PpoOptions
{
    /// <summary>Learning rate of policy and value model.</summary>
    /// <value>Default 1e-5; greater than 0, at most 1.</value>
    [Range(1e-12, 1)]
    public double LearningRate { get; set; } = 1e-5;

    /// <summary>PPO iterations (rollout batch + updates).</summary>
    /// <value>Default 20; 1 to 10,000,000.</value>
    [Range(1, 10_000_000)]
    public int MaxSteps { get; set; } = 20;

    /// <summary>Prompts per rollout batch.</summary>
    /// <value>Default 16; 1 to 4096.</value>
    [Range(1, 4096)]
    public int RolloutBatchSize { get; set; } = 16;

    /// <summary>Optimisation passes over each rollout batch.</summary>
    /// <value>Default 4; 1 to 100.</value>
    [Range(1, 100)]
    public int NumPpoEpochs { get; set; } = 4;

    /// <summary>Mini-batches per PPO epoch.</summary>
    /// <value>Default 1; 1 to 4096.</value>
    [Range(1, 4096)]
    public int NumMiniBatches { get; set; } = 1;

    /// <summary>Initial KL coefficient β_KL.</summary>
    /// <value>Default 0.05; 0 to 100.</value>
    [Range(0.0, 100.0)]
    public double KlCoef { get; set; } = 0.05;

    /// <summary>Target KL for the adaptive controller; null keeps β_KL fixed.</summary>
    /// <value>Default null.</value>
    [Range(1e-6, 1000)]
    public double? TargetKl { get; set; }

    /// <summary>Horizon of the adaptive KL controller.</summary>
    /// <value>Default 10000.</value>
    [Range(1, 1e9)]
    public double KlHorizon { get; set; } = 10_000;

    /// <summary>Policy ratio clip ε.</summary>
    /// <value>Default 0.2; 0 to 10.</value>
    [Range(0.0, 10.0)]
    public double Cliprange { get; set; } = 0.2;

    /// <summary>Value clip.</summary>
    /// <value>Default 0.2; 0 to 1000.</value>
    [Range(0.0, 1000.0)]
    public double CliprangeValue { get; set; } = 0.2;

    /// <summary>Weight of the value loss.</summary>
    /// <value>Default 0.1; 0 to 100.</value>
    [Range(0.0, 100.0)]
    public double VfCoef { get; set; } = 0.1;

    /// <summary>GAE γ.</summary>
    /// <value>Default 1.0; 0 to 1.</value>
    [Range(0.0, 1.0)]
    public double Gamma { get; set; } = 1.0;

    /// <summary>GAE λ.</summary>
    /// <value>Default 0.95; 0 to 1.</value>
    [Range(0.0, 1.0)]
    public double Lam { get; set; } = 0.95;

    /// <summary>Whiten the per-token rewards before GAE (advantages are always whitened).</summary>
    /// <value>Default false.</value>
    public bool WhitenRewards { get; set; }

    /// <summary>New tokens per rollout sample.</summary>
    /// <value>Default 53; 1 to 32768.</value>
    [Range(1, 32_768)]
    public int ResponseLength { get; set; } = 53;

    /// <summary>Rollout sampling temperature (log-probs are computed at the same temperature).</summary>
    /// <value>Default 0.7; greater than 0, at most 10.</value>
    [Range(1e-3, 10)]
    public double Temperature { get; set; } = 0.7;

    /// <summary>Subtracted from the score of samples that end without EOS; null = no penalty.</summary>
    /// <value>Default 1.0.</value>
    [Range(0.0, 1000.0)]
    public double? MissingEosPenalty { get; set; } = 1.0;

    /// <summary>Global gradient-norm clip; 0 = off.</summary>
    /// <value>Default 1.0.</value>
    [Range(0, 1e6)]
    public double MaxGradNorm { get; set; } = 1.0;

    /// <summary>Value model initialisation: "policy" (the policy's body with a new zero value head). The reward model is an
    /// ONNX graph and cannot seed a trainable value model, so "reward" is refused with that reason.</summary>
    /// <value>Default "policy".</value>
    [RegularExpression("^policy$", ErrorMessage = "value_model_init must be policy: the reward model is ONNX and cannot initialise a trainable value model.")]
    public string ValueModelInit { get; set; } = "policy";

    /// <summary>Checkpoint every N PPO iterations; 0 = only at the end.</summary>
    /// <value>Default 0.</value>
    [Range(0, 10_000_000)]
    public int SaveSteps { get; set; }

    /// <summary>
    /// Largest weight file of a checkpoint (transformers' <c>max_shard_size</c>): bytes ("1000000"), or a number with
    /// KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024). Weights above it are written as
    /// model-00001-of-0000N.safetensors shards plus model.safetensors.index.json; a tensor is never split. It does not
    /// change what is trained, so it is not part of the training's fingerprint: a run may resume with another value.
    /// </summary>
    /// <value>Default "5GB" (5 × 10⁹ bytes), as transformers' save_pretrained.</value>
    [RegularExpression(@"^\s*[1-9][0-9]*\s*([KkMmGgTt][Ii]?[Bb])?\s*$", ErrorMessage = "max_shard_size must be a positive number of bytes or a size such as 500MB, 5GB or 2GiB.")]
    [System.Text.Json.Serialization.JsonIgnore]
    public string MaxShardSize { get; set; } = "5GB";

    /// <summary><see cref="MaxShardSize"/> in bytes.</summary>
    internal long MaxShardBytes => PrefPipe.Models.SafeTensors.SafeTensorsWriter.ParseShardSize(MaxShardSize);

    /// <summary>Seed for prompt order and sampling.</summary>
    /// <value>Default 42.</value>
    public long Seed { get; set; } = 42;

    /// <summary>
    /// LoRA (<c>lora: {r, alpha, dropout, target_modules, use_rslora}</c>): the policy trains a new adapter on its frozen
    /// start (a LoRA start is merged into its base first), the reference is that start with the adapter switched off, and
    /// the value head reads the policy's hidden states (one backbone, as TRL's PEFT PPO). Null trains every weight.
    /// </summary>
    /// <value>Default null (full fine-tuning with a separate value model).</value>
    [ValidateObjectMembers]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] // off, it leaves the training fingerprint as it was
    public LoraOptions? Lora { get; set; }

    /// <summary>
    /// Recompute each decoder layer's activations in the backward pass of the PPO updates instead of keeping them
    /// (activation checkpointing): less memory for about one more forward pass of time; the same losses and gradients.
    /// </summary>
    /// <value>Default false.</value>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] // off, it leaves the training fingerprint as it was
    public bool GradientCheckpointing { get; set; }

    /// <summary>Throws when an option is out of range, naming every one and what it expects.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new PpoOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(PpoOptions), result.Failures);
    }
}
