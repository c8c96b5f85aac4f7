using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using System.Text.Json.Serialization;
using PrefPipe.Models;
using PrefPipe.Models.Lora;
using PrefPipe.Trainer.Objectives;
using PrefPipe.Trainer.Optimization;

namespace PrefPipe.Trainer;

/// <summary>How to shorten a pair that exceeds the length limits (TRL's <c>truncation_mode</c>).</summary>
public enum TruncationMode
{
    /// <summary>Keep the end of the prompt (drop its start) and the start of the responses.</summary>
    KeepEnd,

    /// <summary>Keep the start of the prompt.</summary>
    KeepStart,
}

/// <summary>Options of the dpo stage (DPO family; <c>training.dpo</c>). Names follow TRL's DPOConfig / HF TrainingArguments in snake_case.</summary>
public sealed class DpoTrainingOptions : IValidatableObject
{
    /// <summary>The objective and its hyper-parameters (<c>loss_type</c>, <c>beta</c>, …).</summary>
    [Required]
    [ValidateObjectMembers]
    public ObjectiveOptions Objective { get; set; } = new();

    /// <summary>Peak learning rate.</summary>
    /// <value>Default 1e-6 (TRL's DPO default); greater than 0, at most 1.</value>
    [Range(1e-12, 1)]
    public double LearningRate { get; set; } = 1e-6;

    /// <summary>Passes over the training pairs (ignored when <see cref="MaxSteps"/> &gt; 0).</summary>
    /// <value>Default 1; 1 to 1000.</value>
    [Range(1, 1000)]
    public int NumTrainEpochs { get; set; } = 1;

    /// <summary>Optimizer steps to run; 0 = as many as the epochs give.</summary>
    /// <value>Default 0; 0 to 10,000,000.</value>
    [Range(0, 10_000_000)]
    public int MaxSteps { get; set; }

    /// <summary>Pairs per micro-batch.</summary>
    /// <value>Default 8; 1 to 4096.</value>
    [Range(1, 4096)]
    public int PerDeviceTrainBatchSize { get; set; } = 8;

    /// <summary>Micro-batches per optimizer step.</summary>
    /// <value>Default 1; 1 to 4096.</value>
    [Range(1, 4096)]
    public int GradientAccumulationSteps { get; set; } = 1;

    /// <summary>Fraction of steps spent warming up linearly from 0.</summary>
    /// <value>Default 0.1; 0 to 1.</value>
    [Range(0.0, 1.0)]
    public double WarmupRatio { get; set; } = 0.1;

    /// <summary>Decay after warmup.</summary>
    /// <value>Default <see cref="ScheduleKind.Cosine"/>.</value>
    public ScheduleKind LrSchedulerType { get; set; } = ScheduleKind.Cosine;

    /// <summary>AdamW decoupled weight decay (matrices only).</summary>
    /// <value>Default 0; 0 to 1.</value>
    [Range(0.0, 1.0)]
    public double WeightDecay { get; set; }

    /// <summary>Global gradient-norm clip; 0 = off.</summary>
    /// <value>Default 1.0; 0 to 1e6.</value>
    [Range(0, 1e6)]
    public double MaxGradNorm { get; set; } = 1.0;

    /// <summary>Longest prompt + response, in tokens.</summary>
    /// <value>Default 1024; 2 to 1,048,576.</value>
    [Range(2, 1_048_576)]
    public int MaxLength { get; set; } = 1024;

    /// <summary>Longest prompt, in tokens.</summary>
    /// <value>Default 512; 1 to 1,048,576.</value>
    [Range(1, 1_048_576)]
    public int MaxPromptLength { get; set; } = 512;

    /// <summary>Truncation mode.</summary>
    /// <value>Default <see cref="TruncationMode.KeepEnd"/>.</value>
    public TruncationMode TruncationMode { get; set; } = TruncationMode.KeepEnd;

    /// <summary>Seed for data order and initialisation; training on CPU is deterministic for a given seed.</summary>
    /// <value>Default 42.</value>
    public long Seed { get; set; } = 42;

    /// <summary>Checkpoint every N optimizer steps; 0 = only at the end.</summary>
    /// <value>Default 0; 0 to 10,000,000.</value>
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

    /// <summary>Metrics every N optimizer steps.</summary>
    /// <value>Default 10; 1 to 1,000,000.</value>
    [Range(1, 1_000_000)]
    public int LoggingSteps { get; set; } = 10;

    /// <summary>Training dtype: auto (float32 on CPU, bfloat16 on CUDA), float32 or bfloat16.</summary>
    /// <value>Default auto.</value>
    public TrainingDtype Dtype { get; set; } = TrainingDtype.Auto;

    /// <summary>
    /// LoRA (<c>lora: {r, alpha, dropout, target_modules, use_rslora}</c>): train low-rank adapters on the frozen policy
    /// instead of every weight; checkpoints are PEFT adapter folders. Null trains every weight.
    /// </summary>
    /// <value>Default null (full fine-tuning).</value>
    [ValidateObjectMembers]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] // off, it leaves the training fingerprint as it was
    public LoraOptions? Lora { get; set; }

    /// <summary>
    /// Recompute each decoder layer's activations in the backward pass instead of keeping them (activation
    /// checkpointing): less memory for about one more forward pass of time; the same losses and gradients.
    /// </summary>
    /// <value>Default false.</value>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] // off, it leaves the training fingerprint as it was
    public bool GradientCheckpointing { get; set; }

    /// <summary>Throws when an option (the objective's included) is out of range or inconsistent, naming every one.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new DpoTrainingOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(DpoTrainingOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (!Enum.IsDefined(Dtype))
            yield return new ValidationResult("dtype must be auto, float32 or bfloat16.", OptionsMembers.Under(validationContext, nameof(Dtype)));
        if (MaxPromptLength >= MaxLength)
            yield return new ValidationResult($"max_prompt_length ({MaxPromptLength}) must be less than max_length ({MaxLength}).",
                OptionsMembers.Under(validationContext, nameof(MaxPromptLength), nameof(MaxLength)));
    }
}
