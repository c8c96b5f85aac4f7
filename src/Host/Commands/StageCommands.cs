using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Ingest;
using PrefPipe.Models.Reward;
using PrefPipe.Ranking;
using PrefPipe.Ranking.Judges;
using PrefPipe.Splitter;
using PrefPipe.Text.Templates;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary>
/// <c>prefpipe ingest | rank | split</c>: each data stage on its own, artifact URIs in and out (local paths,
/// <c>az://CONTAINER/PATH</c> or blob URLs). <c>--output</c> is a folder; the stage writes its artifacts into it.
/// </summary>
internal static partial class StageCommands
{
    // Option defaults come from the options classes, so the CLI and a pipeline file default alike.
    private static readonly IngestOptions IngestDefaults = new();
    private static readonly RankingOptions RankingDefaults = new();

    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IEnumerable<Command> Create(IAnsiConsole? console) => [Ingest(console), Rank(console), Split(console)];

    private static Option<string> Required(string name, string description) => new(name) { Description = description, Required = true };

    private static Command Ingest(IAnsiConsole? console)
    {
        var prompts = Required("--prompts", "Prompts: Parquet or JSON lines with a prompt (text) or messages (list of {role, content}) column; local, az:// or blob URL.");
        var model = Required("--model", "Policy model folder (config.json, *.safetensors, tokenizer.json).");
        var output = Required("--output", "Output folder (local, az://CONTAINER/PATH or blob URL): prompts, rejects, candidates and per-batch parts. A rerun resumes at the first missing batch.");
        var candidates = new Option<int>("--candidates") { Description = "Candidates per prompt (K).", DefaultValueFactory = _ => IngestDefaults.CandidatesPerPrompt };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "New tokens per candidate.", DefaultValueFactory = _ => IngestDefaults.MaxNewTokens };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature (0 = greedy).", DefaultValueFactory = _ => IngestDefaults.Temperature };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling mass.", DefaultValueFactory = _ => IngestDefaults.TopP };
        var topK = new Option<int>("--top-k") { Description = "Top-k sampling (0 = off).", DefaultValueFactory = _ => IngestDefaults.TopK };
        var seed = new Option<long>("--seed") { Description = "Run seed (candidates are reproducible per prompt and index).", DefaultValueFactory = _ => IngestDefaults.Seed };
        var batch = new Option<int>("--batch-size") { Description = "Prompts per generation batch (and per committed part).", DefaultValueFactory = _ => IngestDefaults.BatchSize };
        var maxRows = new Option<int>("--max-batch-rows") { Description = "Sequences the local engine decodes at once (continuous batching within a batch; 0 = batch size × K).", DefaultValueFactory = _ => IngestDefaults.MaxBatchRows };
        var fromMemory = new Option<bool>("--batch-rows-from-memory") { Description = "Choose the decoding rows from the memory left once the policy is loaded (at most --max-batch-rows when set)." };
        var maxPrompt = new Option<int>("--max-prompt-tokens") { Description = "Longest prompt in tokens.", DefaultValueFactory = _ => IngestDefaults.MaxPromptTokens };
        var overLong = new Option<OverLongPolicy>("--over-long") { Description = "Longer prompts: reject or truncate.", DefaultValueFactory = _ => IngestDefaults.OverLong };
        var template = new Option<ChatTemplateMode>("--chat-template") { Description = "auto, always or never.", DefaultValueFactory = _ => IngestDefaults.ChatTemplate };
        var system = new Option<string?>("--system-prompt") { Description = "System message for prompts given as text." };
        var generator = GeneratorFlags.Create();
        var json = new Option<bool>("--json") { Description = "Print one JSON line instead of a table." };
        var command = new Command("ingest", "The ingest stage alone: validate and template prompts, generate K candidates each with the policy "
            + "(here, or on an OpenAI-compatible server with --generator openai).")
            { prompts, model, output, candidates, maxNew, temperature, topP, topK, seed, batch, maxRows, fromMemory, maxPrompt, overLong, template, system, json };
        foreach (var option in generator.All) command.Options.Add(option);
        command.SetAction((parse, ct) => Execute("ingest", parse.GetValue(json), console, async () =>
        {
            var options = new IngestOptions
            {
                CandidatesPerPrompt = parse.GetValue(candidates), MaxNewTokens = parse.GetValue(maxNew), Temperature = parse.GetValue(temperature),
                TopP = parse.GetValue(topP), TopK = parse.GetValue(topK), Seed = parse.GetValue(seed), BatchSize = parse.GetValue(batch),
                MaxBatchRows = parse.GetValue(maxRows), BatchRowsFromMemory = parse.GetValue(fromMemory), MaxPromptTokens = parse.GetValue(maxPrompt), OverLong = parse.GetValue(overLong), ChatTemplate = parse.GetValue(template),
                SystemPrompt = parse.GetValue(system), Generator = generator.Bind(parse),
            };
            ValidateNamingFlags(options);
            string promptsUri = parse.GetValue(prompts)!, policy = parse.GetValue(model)!;
            var (promptStore, promptPath) = ArtifactStores.OpenFile(promptsUri);
            var (store, prefix) = OpenFolder(parse.GetValue(output)!);
            var result = await new IngestStage(options).RunAsync(PromptSource.ReadAsync(promptStore, promptPath, cancellationToken: ct), ArtifactStores.Redact(promptsUri), policy, store, prefix,
                cancellationToken: ct).ConfigureAwait(false);
            return new StageSummary("ingest", result.RowsIn,
                [("prompts", result.Prompts), ("rejects", result.Rejects), ("candidates", result.Candidates)],
                [("candidates per prompt", options.CandidatesPerPrompt), ("resumed batches", result.ResumedBatches),
                 .. result.Generation is { } g
                    ? new (string, object)[] { ("decoding rows", g.BatchRows), ("decoding utilisation", Math.Round(g.Utilisation, 4)), ("joined", g.Joined) }
                    : []]);
        }, ct));
        return command;
    }

    /// <summary>ingest's pipeline keys → the flags that set them (ingest.generator.KEY: <see cref="GeneratorFlags.FlagOf"/>).</summary>
    private static readonly Dictionary<string, string> IngestFlags = new(StringComparer.Ordinal)
    {
        ["candidates_per_prompt"] = "--candidates", ["max_new_tokens"] = "--max-new-tokens", ["temperature"] = "--temperature",
        ["top_p"] = "--top-p", ["top_k"] = "--top-k", ["seed"] = "--seed", ["batch_size"] = "--batch-size",
        ["max_batch_rows"] = "--max-batch-rows", ["batch_rows_from_memory"] = "--batch-rows-from-memory",
        ["max_prompt_tokens"] = "--max-prompt-tokens", ["over_long"] = "--over-long", ["chat_template"] = "--chat-template",
        ["system_prompt"] = "--system-prompt",
    };

    /// <summary>
    /// Validates ingest's options with their own validator (the one a pipeline file's <c>ingest:</c> goes through) and
    /// reports every failure under the flag that set the option: <c>--generator-max-concurrency (value 0): must be …</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Some option is invalid (exit 2); one "; "-separated part per failure.</exception>
    internal static void ValidateNamingFlags(IngestOptions options)
    {
        var problems = new List<string>();
        YamlBinder.Validate(options, "ingest", name => options.Validate(name), problems);
        if (problems.Count == 0) return;
        throw new ArgumentException(string.Join("; ", problems.Select(p =>
        {
            var key = IngestKey().Match(p);
            string name = key.Groups["key"].Value;
            string? flag = !key.Success ? null
                : name.StartsWith("generator.", StringComparison.Ordinal) ? GeneratorFlags.FlagOf(name["generator.".Length..])
                : IngestFlags.GetValueOrDefault(name);
            return (flag is null ? p : flag + p[key.Length..]).TrimEnd('.');
        })));
    }

    [GeneratedRegex(@"^ingest\.(?<key>[a-z_]+(?:\.[a-z_]+)*)")]
    private static partial Regex IngestKey();

    private static Command Rank(IAnsiConsole? console)
    {
        var candidates = Required("--candidates", "Candidates artifact (Parquet, from ingest): local, az:// or blob URL.");
        var rewardModel = Required("--reward-model", "Reward model folder (model.onnx + tokenizer.json).");
        var output = Required("--output", "Output folder (local, az://CONTAINER/PATH or blob URL): scored candidates, comparisons, preferences, unpaired.");
        var judge = new Option<JudgeKind>("--judge") { Description = "reward (reward-model scores) or llm (a chat-completions endpoint).", DefaultValueFactory = _ => RankingDefaults.Judge };
        var method = new Option<RankingMethod>("--method") { Description = "pairwise (iterative pairwise ranking with the judge) or pointwise (best and worst by reward score, no judge calls).", DefaultValueFactory = _ => RankingDefaults.Method };
        var tie = new Option<double>("--tie-epsilon") { Description = "Reward judge: |r_a − r_b| below this is a tie.", DefaultValueFactory = _ => RankingDefaults.TieEpsilon };
        var batch = new Option<int>("--batch-size") { Description = "Reward model: sequences per batch.", DefaultValueFactory = _ => RankingDefaults.Reward.BatchSize };
        var maxLength = new Option<int>("--max-length") { Description = "Reward model: longest sequence in tokens (longer ones are cut on the left).", DefaultValueFactory = _ => RankingDefaults.Reward.MaxLength };
        var endpoint = new Option<Uri?>("--judge-endpoint")
        {
            Description = "LLM judge: base URL (e.g. https://api.openai.com/v1). The key comes from PREFPIPE_JUDGE_API_KEY.",
            CustomParser = GeneratorFlags.AbsoluteUrl("--judge-endpoint", "https://api.openai.com/v1"),
        };
        var judgeModel = new Option<string?>("--judge-model") { Description = "LLM judge: model (OpenAI) or deployment (Azure OpenAI) name." };
        var api = new Option<LlmApiKind>("--judge-api") { Description = "LLM judge API shape: OpenAI or AzureOpenAI.", DefaultValueFactory = _ => LlmApiKind.OpenAI };
        var json = new Option<bool>("--json") { Description = "Print one JSON line instead of a table." };
        var command = new Command("rank", "The rank stage alone: score candidates with the reward model, rank them with a judge into chosen/rejected pairs.")
            { candidates, rewardModel, output, judge, method, tie, batch, maxLength, endpoint, judgeModel, api, json };
        command.SetAction((parse, ct) => Execute("rank", parse.GetValue(json), console, async () =>
        {
            var options = new RankingOptions
            {
                Judge = parse.GetValue(judge), Method = parse.GetValue(method), TieEpsilon = parse.GetValue(tie),
                Reward = new RewardModelOptions { BatchSize = parse.GetValue(batch), MaxLength = parse.GetValue(maxLength) },
            };
            if (options.Judge == JudgeKind.Llm)
            {
                options.Llm = new LlmJudgeOptions { Endpoint = parse.GetValue(endpoint), Model = parse.GetValue(judgeModel) ?? "", Api = parse.GetValue(api) };
                if (options.Llm.Endpoint is null) throw new ArgumentException("--judge llm needs --judge-endpoint (and --judge-model)");
            }
            options.Validate(); // the reward model's and the judge's options too
            var (store, input, prefix) = await OpenInputAndOutputAsync(parse.GetValue(candidates)!, parse.GetValue(output)!, CandidateColumns, ct).ConfigureAwait(false);
            var result = await new RankingStage(options).RunAsync(store, input, parse.GetValue(rewardModel)!, prefix, cancellationToken: ct).ConfigureAwait(false);
            return new StageSummary("rank", result.PromptsIn,
                [("scored", result.Scored), ("comparisons", result.Comparisons), ("preferences", result.Preferences), ("unpaired", result.Unpaired)],
                [("judge calls", result.JudgeCalls)]);
        }, ct));
        return command;
    }

    private static Command Split(IAnsiConsole? console)
    {
        var preferences = Required("--preferences", "Preferences artifact (Parquet, from rank): local, az:// or blob URL.");
        var output = Required("--output", "Output folder (local, az://CONTAINER/PATH or blob URL): easy, difficult, dropped, report.json, report.md, gap_histogram.png.");
        var rule = new Option<SplitRule>("--rule") { Description = "threshold (gap ≥ τ is easy) or quantile (the top q by gap is easy).", DefaultValueFactory = _ => SplitRule.Quantile };
        var threshold = new Option<double>("--threshold") { Description = "τ for --rule threshold, in reward units.", DefaultValueFactory = _ => 1.0 };
        var quantile = new Option<double>("--quantile") { Description = "q for --rule quantile: the easy fraction, 0 to 1.", DefaultValueFactory = _ => 0.5 };
        var negative = new Option<NegativeGapPolicy>("--negative-gaps") { Description = "Pairs whose reward gap is negative: drop, difficult or flip.", DefaultValueFactory = _ => NegativeGapPolicy.Difficult };
        var json = new Option<bool>("--json") { Description = "Print one JSON line instead of a table." };
        var command = new Command("split", "Stage 3 alone: split preference pairs into easy and difficult by reward gap, with a data-quality report.")
            { preferences, output, rule, threshold, quantile, negative, json };
        command.SetAction((parse, ct) => Execute("split", parse.GetValue(json), console, async () =>
        {
            var options = new SplitterOptions
            {
                Rule = parse.GetValue(rule), Threshold = parse.GetValue(threshold), Quantile = parse.GetValue(quantile), NegativeGaps = parse.GetValue(negative),
            };
            options.Validate();
            var (store, input, prefix) = await OpenInputAndOutputAsync(parse.GetValue(preferences)!, parse.GetValue(output)!, PreferenceColumns, ct).ConfigureAwait(false);
            var result = await new SplitterStage(options).RunAsync(store, input, prefix, cancellationToken: ct).ConfigureAwait(false);
            return new StageSummary("split", result.PairsIn,
                [("easy", result.Easy), ("difficult", result.Difficult), ("dropped", result.Dropped)],
                [("rule", result.Report.Rule)]);
        }, ct));
        return command;
    }

    /// <summary>An output folder location as (the store of its parent, the folder's name): the stages write PREFIX/name.</summary>
    internal static (IArtifactStore Store, string Prefix) OpenFolder(string location)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(location);
        if (!ArtifactStores.IsBlobLocation(location))
        {
            string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(location));
            string? parent = Path.GetDirectoryName(full);
            if (parent is null) throw new ArgumentException($"--output {location}: give a folder below the file system root", nameof(location));
            if (File.Exists(full)) throw new ArgumentException($"--output {full} is a file; give a folder", nameof(location));
            return (ArtifactStores.Open(parent), Path.GetFileName(full));
        }
        int q = location.IndexOf('?', StringComparison.Ordinal);
        string withoutQuery = (q < 0 ? location : location[..q]).TrimEnd('/');
        string query = q < 0 ? "" : location[q..];
        // az://CONTAINER alone (or a bare container URL) has no folder to write into.
        bool hasFolder = withoutQuery.StartsWith("az://", StringComparison.OrdinalIgnoreCase)
            ? withoutQuery["az://".Length..].Contains('/', StringComparison.Ordinal)
            : Uri.TryCreate(withoutQuery, UriKind.Absolute, out var uri) && uri.AbsolutePath.Trim('/').Contains('/', StringComparison.Ordinal);
        if (!hasFolder)
            throw new ArgumentException($"--output {ArtifactStores.Redact(location)}: give a folder inside the container, e.g. az://CONTAINER/runs/r1/rank", nameof(location));
        int slash = withoutQuery.LastIndexOf('/');
        string name = withoutQuery[(slash + 1)..];
        string parentLocation = withoutQuery[..slash];
        ArtifactPath.ValidateName(name, "--output folder");
        return (ArtifactStores.Open(parentLocation + query), name);
    }

    /// <summary>
    /// The output folder's store, with the input file visible in it under its own name (the stages read and write one
    /// store; the input may live elsewhere: another folder, another container).
    /// </summary>
    private static async Task<(IArtifactStore Store, string InputPath, string Prefix)> OpenInputAndOutputAsync(string inputLocation, string outputLocation,
        IReadOnlyList<(string Name, string Type)> columns, CancellationToken cancellationToken)
    {
        var (inputStore, inputPath) = ArtifactStores.OpenFile(inputLocation);
        await RequireColumnsAsync(inputStore, inputPath, columns, cancellationToken).ConfigureAwait(false);
        var (outputStore, prefix) = OpenFolder(outputLocation);
        return (new InputOverlayStore(outputStore, inputPath, inputStore), inputPath, prefix);
    }

    /// <summary>Columns rank reads from a candidates artifact (Parquet.Net would fill a missing one with defaults).</summary>
    internal static readonly (string Name, string Type)[] CandidateColumns = [("prompt_id", "string"), ("prompt", "string"), ("candidate_index", "int32"), ("response", "string")];

    /// <summary>Columns split reads from a preferences artifact.</summary>
    internal static readonly (string Name, string Type)[] PreferenceColumns =
        [("prompt_id", "string"), ("prompt", "string"), ("chosen", "string"), ("rejected", "string"), ("score_chosen", "double"),
         ("score_rejected", "double"), ("reward_gap", "double"), ("judge_agrees", "bool"), ("chosen_index", "int32"), ("rejected_index", "int32")];

    /// <summary>Throws <see cref="InvalidDataException"/> naming the file and every missing or mistyped column.</summary>
    private static async Task RequireColumnsAsync(IArtifactStore store, string path, IReadOnlyList<(string Name, string Type)> columns, CancellationToken cancellationToken)
    {
        var summary = await ArtifactInspector.InspectAsync(store, path, 0, cancellationToken).ConfigureAwait(false);
        if (summary.Format != "parquet")
            throw new InvalidDataException($"{summary.Uri}: expected a Parquet artifact, got {summary.Format}");
        var have = summary.Columns.ToDictionary(c => c.Name, c => c.Type, StringComparer.Ordinal);
        var problems = columns
            .Select(c => !have.TryGetValue(c.Name, out string? type) ? $"no '{c.Name}' column ({c.Type} expected)"
                : type.Replace(" not null", "", StringComparison.Ordinal) != c.Type ? $"column '{c.Name}' is {type}, expected {c.Type}" : null)
            .OfType<string>().ToList();
        if (problems.Count > 0)
            throw new InvalidDataException($"{summary.Uri}: {string.Join("; ", problems)} (has: {string.Join(", ", summary.Columns.Select(c => c.Name))})");
    }
}
