using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using PrefPipe.Models;
using PrefPipe.Ingest;
using PrefPipe.Ranking;
using PrefPipe.Splitter;
using PrefPipe.Trainer;

namespace PrefPipe.Host.Pipelines;

/// <summary>A pipeline file (pipelines/*.yaml): what to run, on which data and models, and when.</summary>
/// <remarks>
/// <see cref="PipelineDefinitionValidator"/> checks this class and its host sections; each stage's options are checked
/// by the stage's own validator (<see cref="IngestOptions.Validate"/>, ...). Attribute messages that are not the
/// default ones start with <c>{0}</c>, the option's path, so a nested option's message names its key.
/// </remarks>
internal sealed class PipelineDefinition
{
    /// <summary>Pipeline name, used in run ids and logs.</summary>
    [Required, RegularExpression("^[a-z0-9][a-z0-9-]{0,62}$", ErrorMessage = "{0} must be 1-63 lowercase letters, digits or '-', starting with a letter or digit.")]
    public string Name { get; set; } = "pipeline";

    /// <summary>Where runs and artifacts go: a local folder, az://container/prefix or a blob endpoint URL.</summary>
    [Required(AllowEmptyStrings = false)]
    public string Storage { get; set; } = "./runs";

    /// <summary>Input data.</summary>
    [Required, ValidateObjectMembers]
    public InputsSection Inputs { get; set; } = new();

    /// <summary>Model folders.</summary>
    [Required, ValidateObjectMembers]
    public ModelsSection Models { get; set; } = new();

#pragma warning disable SYSLIB1212 // the stages' options are checked by each stage's own validator (PipelineLoader.Validate), not by this one
    /// <summary>Stage: ingest and generation.</summary>
    [Required]
    public IngestOptions Ingest { get; set; } = new();

    /// <summary>Stage: scoring and ranking.</summary>
    [Required]
    public RankingOptions Ranking { get; set; } = new();

    /// <summary>Stage: easy/difficult split.</summary>
    [Required]
    public SplitterOptions Split { get; set; } = new();
#pragma warning restore SYSLIB1212

    /// <summary>Stage: training plan.</summary>
    [Required, ValidateObjectMembers]
    public TrainingSection Training { get; set; } = new();

    /// <summary>Stage: evaluation of the final policy against the start.</summary>
    [Required, ValidateObjectMembers]
    public PrefPipe.Trainer.Evaluation.EvaluationOptions Evaluation { get; set; } = new();

    /// <summary>When the hosted service starts runs.</summary>
    [Required, ValidateObjectMembers]
    public TriggersSection Triggers { get; set; } = new();
}

/// <summary>Input data locations (local paths relative to the pipeline file, or blob URIs).</summary>
internal sealed class InputsSection
{
    /// <summary>Training prompts: Parquet or JSONL with a prompt (text) or messages column.</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = "{0} is required: a Parquet or JSONL file of prompts.")]
    public string Prompts { get; set; } = "";

    /// <summary>Held-out prompts for evaluation; none = no evaluation stage.</summary>
    public string? EvalPrompts { get; set; }
}

/// <summary>Model folders in Hugging Face layout.</summary>
internal sealed class ModelsSection
{
    /// <summary>The policy to align (config.json, safetensors, tokenizer.json).</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = "{0} is required: a Hugging Face model folder.")]
    public string Policy { get; set; } = "";

    /// <summary>The dpo stage's reference model; default: the policy itself (the SFT model).</summary>
    public string? Reference { get; set; }

    /// <summary>The reward model: model.onnx + tokenizer.json.</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = "{0} is required: a folder with model.onnx and tokenizer.json.")]
    public string Reward { get; set; } = "";
}

/// <summary>Which training stages run, on which data.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(PrefPipe.Host.Runs.LowerCaseEnumConverter<TrainingPlan>))]
internal enum TrainingPlan
{
    /// <summary>Mixed preference optimization: DPO on the easy pairs, then PPO on the difficult prompts from the DPO model.</summary>
    Mpo,

    /// <summary>DPO on all pairs.</summary>
    Dpo,

    /// <summary>PPO on all prompts from the policy.</summary>
    Ppo,

    /// <summary>No training: ingest, rank and split only.</summary>
    None,
}

/// <summary>Training: the plan, and the options of its stages.</summary>
internal sealed class TrainingSection
{
    /// <summary>mpo (dpo on easy, then ppo on difficult), dpo (dpo on all pairs), ppo (ppo on all prompts), or none.</summary>
    public TrainingPlan Plan { get; set; } = TrainingPlan.Mpo;

#pragma warning disable SYSLIB1212 // checked by the stage's own validator (PipelineLoader.Validate), not by this one
    /// <summary>The dpo stage (DPO family).</summary>
    [Required]
    public DpoTrainingOptions Dpo { get; set; } = new();

    /// <summary>The ppo stage.</summary>
    [Required]
    public PrefPipe.Trainer.Ppo.PpoOptions Ppo { get; set; } = new();
#pragma warning restore SYSLIB1212

    /// <summary>Whether the plan runs the dpo stage.</summary>
    public bool RunsDpo => Plan is TrainingPlan.Mpo or TrainingPlan.Dpo;

    /// <summary>Whether the plan runs the ppo stage.</summary>
    public bool RunsPpo => Plan is TrainingPlan.Mpo or TrainingPlan.Ppo;
}

/// <summary>Triggers for the hosted service (<c>prefpipe serve</c>).</summary>
internal sealed class TriggersSection
{
    /// <summary>Cron expression (5 fields, or 6 with seconds) for scheduled runs; none = not scheduled.</summary>
    public string? Schedule { get; set; }

    /// <summary>IANA or Windows time-zone id for the schedule.</summary>
    /// <value>Default UTC.</value>
    public string TimeZone { get; set; } = "UTC";

    /// <summary>Blob trigger: a new prompts blob under container/prefix starts a run.</summary>
    [ValidateObjectMembers]
    public BlobTrigger? Blob { get; set; }

    /// <summary>Runs the service executes at the same time; further triggers wait.</summary>
    /// <value>Default 1; 1 to 64.</value>
    [Range(1, 64)]
    public int MaxConcurrentRuns { get; set; } = 1;
}

/// <summary>Where new prompt blobs arrive: <c>container</c> + <c>prefix</c> (in the storage account of the pipeline's
/// <c>storage</c>), or <c>location</c> (a store URI: <c>az://container/prefix</c>, a container URL, or a local folder).</summary>
internal sealed class BlobTrigger : IValidatableObject
{
    /// <summary>Container name.</summary>
    [RegularExpression("^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$", ErrorMessage = "{0} must be a valid Azure container name (3-63 lowercase letters, digits, single hyphens).")]
    public string? Container { get; set; }

    /// <summary>Blob name prefix, e.g. incoming/.</summary>
    public string Prefix { get; set; } = "";

    /// <summary>Instead of container/prefix: the store holding new prompt files (az://container/prefix, a container URL, or a local folder).</summary>
    public string? Location { get; set; }

    /// <summary>Optional Azure Storage queue receiving Event Grid BlobCreated events (the container is polled as well).</summary>
    public string? Queue { get; set; }

    /// <summary>Queue service endpoint (https://ACCOUNT.queue.core.windows.net/); default: $PREFPIPE_QUEUE_ENDPOINT, else the connection string's.</summary>
    public string? QueueEndpoint { get; set; }

    /// <summary>Polling interval.</summary>
    /// <value>Default 30 s.</value>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <inheritdoc />
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrWhiteSpace(Container) == string.IsNullOrWhiteSpace(Location))
            yield return new ValidationResult("set exactly one of container (with prefix) or location (az://container/prefix, a container URL or a local folder).",
                OptionsMembers.Under(validationContext, nameof(Container)));
    }
}
