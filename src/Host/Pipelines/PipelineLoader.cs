using System.Globalization;
using System.Text.RegularExpressions;
using Cronos;
using Microsoft.Extensions.Options;
using PrefPipe.Artifacts.Storage;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PrefPipe.Host.Pipelines;

/// <summary>A loaded, validated pipeline and where it came from.</summary>
/// <param name="Definition">The bound options.</param>
/// <param name="File">Full path of the pipeline file.</param>
/// <param name="Directory">Folder relative paths resolve against.</param>
/// <param name="CanonicalYaml">The file after overrides and variable substitution (hashed into the config hash).</param>
internal sealed record LoadedPipeline(PipelineDefinition Definition, string File, string Directory, string CanonicalYaml)
{
    /// <summary>Resolves a path from the file: absolute paths and URIs stay, relative ones are taken from the pipeline's folder.</summary>
    public string Resolve(string path) =>
        path.Contains("://", StringComparison.Ordinal) || Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(Directory, path));
}

/// <summary>
/// Reads pipelines/*.yaml: variables (<c>${VAR}</c>, <c>${VAR:-default}</c>) from the environment, <c>--set key=value</c>
/// overrides, then binding and validation before any work starts. Every problem is reported at once with its key.
/// </summary>
internal static partial class PipelineLoader
{
    /// <param name="file">The pipeline file.</param>
    /// <param name="overrides"><c>key.path=value</c> overrides.</param>
    /// <param name="environment">Variable lookup; default: the process environment.</param>
    /// <param name="baseDirectory">Folder relative paths resolve against; default: the file's folder (a saved copy of a
    /// run's pipeline passes the original folder).</param>
    public static LoadedPipeline Load(string file, IReadOnlyList<string>? overrides = null, Func<string, string?>? environment = null, string? baseDirectory = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string full = Path.GetFullPath(file);
        if (Directory.Exists(full))
            throw new PipelineFileException(full, ["is a directory, expected a file; give a pipeline YAML file such as pipelines/demo.yaml"]);
        if (!System.IO.File.Exists(full))
            throw new PipelineFileException(full, [$"the pipeline file does not exist; expected a YAML file such as pipelines/demo.yaml"]);
        var problems = new List<string>();
        var stream = new YamlStream();
        using (var reader = new StreamReader(full))
        {
            var scanner = new Scanner(reader);
            try
            {
                stream.Load(new Parser(scanner));
            }
            catch (YamlException ex)
            {
                throw new PipelineFileException(full, [$"line {ex.Start.Line}, column {ex.Start.Column}: not valid YAML: {ex.InnerException?.Message ?? ex.Message}"]);
            }
            catch (InvalidOperationException)
            {
                // YamlDotNet's scanner fails this way (no position) on an unclosed '[' or '{' followed by more lines.
                var at = scanner.CurrentPosition;
                throw new PipelineFileException(full, [$"line {at.Line}, column {at.Column}: not valid YAML: a flow sequence or mapping is not closed (a '[' without its ']' or a '{{' without its '}}' before this point)"]);
            }
        }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new PipelineFileException(full, ["expected exactly one YAML document whose top level is a mapping (name:, inputs:, models:, ...)"]);

        Substitute(root, "", environment, problems);
        foreach (string o in overrides ?? [])
            ApplyOverride(root, o, problems);
        if (problems.Count > 0) throw new PipelineFileException(full, problems);
        RefuseSecrets(root, "", problems);

        var definition = YamlBinder.Bind<PipelineDefinition>(root, "", problems);
        Validate(definition, problems);
        var loaded = new LoadedPipeline(definition, full, baseDirectory ?? Path.GetDirectoryName(full)!, Serialize(stream));
        CheckFiles(loaded, problems);
        CheckTriggers(definition, problems);
        if (problems.Count > 0) throw new PipelineFileException(full, problems.Distinct().ToList());
        return loaded;
    }

    /// <summary>The file's own sections, then each stage's options with the stage's validator, named by their keys.</summary>
    private static void Validate(PipelineDefinition d, List<string> problems)
    {
        YamlBinder.Validate(d, "", name =>
        {
            var result = new PipelineDefinitionValidator().Validate(name, d);
            if (result.Failed) throw new OptionsValidationException(name, typeof(PipelineDefinition), result.Failures);
        }, problems);
        // A section set to null is reported above ([Required]).
        if (d.Ingest is { } ingest) YamlBinder.Validate(ingest, "ingest", ingest.Validate, problems);
        if (d.Ranking is { } ranking) YamlBinder.Validate(ranking, "ranking", ranking.Validate, problems);
        if (d.Split is { } split) YamlBinder.Validate(split, "split", split.Validate, problems);
        if (d.Training?.Dpo is { } dpo) YamlBinder.Validate(dpo, "training.dpo", dpo.Validate, problems);
        if (d.Training?.Ppo is { } ppo) YamlBinder.Validate(ppo, "training.ppo", ppo.Validate, problems);
    }

    private static void Substitute(YamlNode node, string path, Func<string, string?> environment, List<string> problems)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children) Substitute(v, Join(path, ((YamlScalarNode)k).Value ?? ""), environment, problems);
                break;
            case YamlSequenceNode seq:
                int i = 0;
                foreach (var item in seq.Children) Substitute(item, $"{path}[{i++}]", environment, problems);
                break;
            case YamlScalarNode scalar when scalar.Value is { } text && text.Contains("${", StringComparison.Ordinal):
                scalar.Value = VariableRegex().Replace(text, m =>
                {
                    string name = m.Groups[1].Value;
                    string? value = environment(name);
                    if (!string.IsNullOrEmpty(value)) return value;
                    if (m.Groups[2].Success) return m.Groups[3].Value;
                    problems.Add($"{path}: environment variable {name} is not set and '{text}' gives no default (write ${{{name}:-default}}).");
                    return m.Value;
                });
                break;
        }
    }

    /// <summary>
    /// Refuses every key and value, after <c>${VAR}</c> and <c>--set</c>, that holds a credential (<see cref="Secrets"/>),
    /// naming the key and never the value: the value is redacted in the tree, so no later message and no canonical
    /// pipeline.yaml can carry it.
    /// </summary>
    private static void RefuseSecrets(YamlNode node, string path, List<string> problems)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children)
                {
                    string at = Join(path, Secrets.Redact(((YamlScalarNode)k).Value));
                    if (Secrets.Find(((YamlScalarNode)k).Value) is { } kind) problems.Add(SecretProblem(at, kind));
                    RefuseSecrets(v, at, problems);
                }
                break;
            case YamlSequenceNode seq:
                int i = 0;
                foreach (var item in seq.Children) RefuseSecrets(item, $"{path}[{i++}]", problems);
                break;
            case YamlScalarNode scalar when Secrets.Find(scalar.Value) is { } kind:
                problems.Add(SecretProblem(path, kind));
                scalar.Value = Secrets.Redact(scalar.Value);
                break;
        }
    }

    private static string SecretProblem(string key, string kind) =>
        $"{key}: holds {kind}; secrets are never read from pipeline files (nor from --set or ${{VAR}} values in them). " +
        $"Set {ArtifactStores.ConnectionStringVariable} (a connection string; for a SAS, one with BlobEndpoint and SharedAccessSignature) " +
        $"or {ArtifactStores.AccountUrlVariable} for a managed identity, and write storage as az://CONTAINER/PREFIX or the container URL without its query; " +
        "an LLM judge's key goes in the environment variable that ranking.llm.api_key_variable names.";

    /// <summary>Applies key.path=value: creates intermediate mappings, replaces the scalar.</summary>
    private static void ApplyOverride(YamlMappingNode root, string assignment, List<string> problems)
    {
        int eq = assignment.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0)
        {
            problems.Add($"--set '{assignment}': expected key.path=value, e.g. --set ingest.candidates_per_prompt=8");
            return;
        }
        string[] keys = assignment[..eq].Trim().Split('.');
        string value = assignment[(eq + 1)..];
        var map = root;
        for (int i = 0; i < keys.Length - 1; i++)
        {
            var key = new YamlScalarNode(keys[i]);
            if (!map.Children.TryGetValue(key, out var child))
            {
                child = new YamlMappingNode();
                map.Children[key] = child;
            }
            if (child is not YamlMappingNode next)
            {
                problems.Add($"--set {assignment[..eq]}: '{string.Join('.', keys[..(i + 1)])}' is a value, not a section.");
                return;
            }
            map = next;
        }
        map.Children[new YamlScalarNode(keys[^1])] = value.StartsWith('[') ? ParseFlowSequence(value) : new YamlScalarNode(value);
    }

    private static YamlNode ParseFlowSequence(string value)
    {
        var s = new YamlStream();
        s.Load(new StringReader(value));
        return s.Documents[0].RootNode;
    }

    private static void CheckFiles(LoadedPipeline p, List<string> problems)
    {
        var d = p.Definition;
        void MustExist(string key, string? value, string expected, params string[] inside)
        {
            if (string.IsNullOrEmpty(value) || value.Contains("://", StringComparison.Ordinal)) return;
            string path = p.Resolve(value);
            bool ok = inside.Length == 0 ? File.Exists(path) : Directory.Exists(path) && inside.All(f => File.Exists(Path.Combine(path, f)));
            if (!ok && inside.Length == 0 && Directory.Exists(path)) problems.Add($"{key} ('{value}' → {path}): is a directory, expected a file.");
            else if (!ok) problems.Add($"{key} ('{value}' → {path}): not found; expected {expected}.");
        }
        MustExist("inputs.prompts", d.Inputs.Prompts, "a Parquet or JSONL file of prompts");
        MustExist("inputs.eval_prompts", d.Inputs.EvalPrompts, "a Parquet or JSONL file of held-out prompts");
        MustExist("models.policy", d.Models.Policy, "a Hugging Face model folder with config.json and tokenizer.json", "config.json", "tokenizer.json");
        MustExist("models.reference", d.Models.Reference, "a Hugging Face model folder with config.json", "config.json");
        MustExist("models.reward", d.Models.Reward, "a folder with model.onnx and tokenizer.json", "model.onnx", "tokenizer.json");
    }

    private static void CheckTriggers(PipelineDefinition d, List<string> problems)
    {
        if (d.Triggers.Schedule is { } cron)
        {
            try
            {
                CronExpression.Parse(cron, cron.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard);
            }
            catch (CronFormatException ex)
            {
                problems.Add($"triggers.schedule ('{cron}'): not a cron expression ({ex.Message}); expected e.g. '0 3 * * *' (03:00 daily).");
            }
        }
        try
        {
            TimeZoneInfo.FindSystemTimeZoneById(d.Triggers.TimeZone);
        }
        catch (TimeZoneNotFoundException)
        {
            problems.Add($"triggers.time_zone ('{d.Triggers.TimeZone}'): unknown time zone; expected an IANA id such as UTC or Europe/Berlin.");
        }
    }

    private static string Serialize(YamlStream stream)
    {
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        stream.Save(writer, assignAnchors: false);
        return writer.ToString();
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    [GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")]
    private static partial Regex VariableRegex();
}
