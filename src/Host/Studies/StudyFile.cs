using System.Globalization;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PrefPipe.Host.Studies;

/// <summary>One cell of a study: a name and the <c>--set</c> overrides that make it.</summary>
/// <param name="Name">The cell's name (a swept cell's: its group's name and the values, e.g. <c>mipo-beta5</c>).</param>
/// <param name="Set">The overrides, the swept values included.</param>
/// <param name="Group">The cell as the file wrote it: the cells of one sweep share it (the best of each group is reported).</param>
internal sealed record StudyCell(string Name, IReadOnlyList<KeyValuePair<string, string>> Set, string Group);

/// <summary>
/// A study file: a base pipeline, seeds, and cells (override maps). Every (cell, seed) is one run of the base pipeline
/// with the cell's overrides and the seed written to every key of <see cref="SeedKeys"/>.
/// </summary>
/// <param name="Name">Study name (<c>name:</c>, default the file's name): the prefix of its run ids and its output folder.</param>
/// <param name="File">The study file's full path.</param>
/// <param name="BasePipeline">The base pipeline's full path (<c>base:</c>, relative to the study file).</param>
/// <param name="Seeds">Seeds; each cell runs once per seed.</param>
/// <param name="SeedKeys">Pipeline keys the seed is written to (<c>seed_keys:</c>).</param>
/// <param name="Cells">Cells, sweeps expanded, in file order.</param>
/// <param name="Set">Overrides every cell starts from (<c>set:</c> at the top level), e.g. more evaluation samples.</param>
/// <param name="Reference">The cell the paired differences are taken against (<c>reference:</c>; default the first).</param>
internal sealed record StudyFile(string Name, string File, string BasePipeline, IReadOnlyList<long> Seeds, IReadOnlyList<string> SeedKeys, IReadOnlyList<StudyCell> Cells,
    IReadOnlyList<KeyValuePair<string, string>> Set, string Reference)
{
    /// <summary>The study file's top-level keys.</summary>
    private static readonly string[] TopKeys = ["name", "base", "seeds", "seed_keys", "set", "reference", "cells"];

    /// <summary>
    /// The training seeds by default: DPO's and PPO's data order and sampling, and the evaluation's sampling. The data
    /// (ingest.seed: the candidates, hence the pairs) stay fixed unless <c>seed_keys:</c> adds <c>ingest.seed</c>.
    /// </summary>
    public static readonly IReadOnlyList<string> DefaultSeedKeys = ["training.dpo.seed", "training.ppo.seed", "evaluation.seed"];

    /// <summary>The run id of a (cell, seed): <c>STUDY-CELL-sSEED</c>.</summary>
    public string RunId(StudyCell cell, long seed) => string.Create(CultureInfo.InvariantCulture, $"{Name}-{cell.Name}-s{seed}");

    /// <summary>The <c>--set</c> overrides of a (cell, seed): the study's, the cell's, then the seed's.</summary>
    public IReadOnlyList<string> Overrides(StudyCell cell, long seed) =>
        [.. Set.Select(kv => $"{kv.Key}={kv.Value}"), .. cell.Set.Select(kv => $"{kv.Key}={kv.Value}"), .. SeedKeys.Select(k => string.Create(CultureInfo.InvariantCulture, $"{k}={seed}"))];

    /// <summary>Reads and checks a study file; every problem is reported at once, with its key and what was expected.</summary>
    /// <exception cref="PipelineFileException">The file is missing or invalid (every problem listed).</exception>
    public static StudyFile Load(string file)
    {
        string full = Path.GetFullPath(file);
        if (!System.IO.File.Exists(full)) throw new PipelineFileException(full, ["the study file does not exist; expected a YAML file with base:, seeds: and cells:"]);
        var stream = new YamlStream();
        try
        {
            using var reader = new StreamReader(full);
            stream.Load(reader);
        }
        catch (YamlException ex)
        {
            throw new PipelineFileException(full, [$"line {ex.Start.Line}, column {ex.Start.Column}: not valid YAML: {ex.InnerException?.Message ?? ex.Message}"]);
        }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new PipelineFileException(full, ["expected one YAML document whose top level is a mapping (base:, seeds:, cells:)"]);

        var problems = new List<string>();
        string? Scalar(YamlNode? node) => (node as YamlScalarNode)?.Value;
        YamlNode? Get(YamlMappingNode map, string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;
        foreach (var key in root.Children.Keys.Select(Scalar).Where(k => !TopKeys.Contains(k)))
            problems.Add($"{key}: unknown key; expected {string.Join(", ", TopKeys)}");

        string name = Scalar(Get(root, "name")) ?? Path.GetFileNameWithoutExtension(full);
        Check(() => ArtifactPath.ValidateName(name, "name"));

        string basePipeline = "";
        if (Scalar(Get(root, "base")) is { Length: > 0 } b)
        {
            basePipeline = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(full)!, b));
            if (!System.IO.File.Exists(basePipeline)) problems.Add($"base: '{b}' does not exist (resolved to {basePipeline}); expected a pipeline file, relative to the study file");
        }
        else problems.Add("base: missing; expected the base pipeline file, e.g. base: demo.yaml (relative to the study file)");

        var seeds = new List<long>();
        if (Get(root, "seeds") is YamlSequenceNode seedList && seedList.Children.Count > 0)
        {
            foreach (var s in seedList.Children)
                if (long.TryParse(Scalar(s), NumberStyles.Integer, CultureInfo.InvariantCulture, out long seed) && seed >= 0) seeds.Add(seed);
                else problems.Add($"seeds: '{Scalar(s)}' is not a non-negative integer");
            if (seeds.Distinct().Count() != seeds.Count) problems.Add($"seeds: [{string.Join(", ", seeds)}] repeats a seed");
        }
        else problems.Add("seeds: missing or empty; expected a list of integers, e.g. seeds: [1, 2, 3]");

        var seedKeys = DefaultSeedKeys;
        if (Get(root, "seed_keys") is { } keysNode)
        {
            if (keysNode is YamlSequenceNode keys && keys.Children.Count > 0 && keys.Children.All(k => Scalar(k) is { Length: > 0 }))
                seedKeys = keys.Children.Select(k => Scalar(k)!).ToList();
            else problems.Add("seed_keys: expected a non-empty list of pipeline keys, e.g. [training.dpo.seed, training.ppo.seed, evaluation.seed]");
        }

        var common = Overrides(Get(root, "set"), "set");

        var cells = new List<StudyCell>();
        if (Get(root, "cells") is YamlSequenceNode cellList && cellList.Children.Count > 0)
        {
            for (int i = 0; i < cellList.Children.Count; i++)
            {
                if (cellList.Children[i] is not YamlMappingNode cell)
                {
                    problems.Add($"cells[{i}]: expected a mapping with name:, set: and optionally sweep:");
                    continue;
                }
                foreach (var key in cell.Children.Keys.Select(Scalar).Where(k => k is not ("name" or "set" or "sweep")))
                    problems.Add($"cells[{i}].{key}: unknown key; expected name, set, sweep");
                string? cellName = Scalar(Get(cell, "name"));
                if (cellName is null) problems.Add($"cells[{i}].name: missing");
                else Check(() => ArtifactPath.ValidateName(cellName, $"cells[{i}].name"));
                var set = Overrides(Get(cell, "set"), $"cells[{i}].set");
                var sweep = Sweep(Get(cell, "sweep"), $"cells[{i}].sweep");
                if (cellName is null) continue;
                foreach (var values in Product(sweep))
                {
                    string suffix = string.Concat(values.Select(v => $"-{v.Key[(v.Key.LastIndexOf('.') + 1)..].Replace("_", "", StringComparison.Ordinal)}{v.Value}"));
                    string expanded = cellName + suffix;
                    if (suffix.Length > 0) Check(() => ArtifactPath.ValidateName(expanded, $"cells[{i}] swept as '{expanded}'"));
                    cells.Add(new StudyCell(expanded, [.. set.Where(kv => values.All(v => v.Key != kv.Key)), .. values], cellName));
                }
            }
            foreach (var dup in cells.GroupBy(c => c.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
                problems.Add($"cells: the name '{dup.Key}' is used {dup.Count()} times; cell names must differ");
        }
        else problems.Add("cells: missing or empty; expected a list of {name, set: {key.path: value}, sweep: {key.path: [values]}}");

        string reference = Scalar(Get(root, "reference")) ?? cells.FirstOrDefault()?.Name ?? "";
        if (cells.Count > 0 && cells.All(c => c.Name != reference))
            problems.Add($"reference: '{reference}' is not a cell of this study; expected one of {string.Join(", ", cells.Select(c => c.Name))}");

        if (problems.Count > 0) throw new PipelineFileException(full, problems);
        return new StudyFile(name, full, basePipeline, seeds, seedKeys, cells, common, reference);

        List<KeyValuePair<string, string>> Overrides(YamlNode? node, string where)
        {
            var set = new List<KeyValuePair<string, string>>();
            switch (node)
            {
                case null: break;
                case YamlMappingNode map:
                    foreach (var (k, v) in map.Children)
                        if (Scalar(k) is { Length: > 0 } key && Scalar(v) is { } value) set.Add(new(key, value));
                        else problems.Add($"{where}: '{Scalar(k)}' needs a scalar value (key.path: value)");
                    break;
                default:
                    problems.Add($"{where}: expected a mapping of key.path: value");
                    break;
            }
            return set;
        }

        List<(string Key, List<string> Values)> Sweep(YamlNode? node, string where)
        {
            var sweep = new List<(string, List<string>)>();
            switch (node)
            {
                case null: break;
                case YamlMappingNode map:
                    foreach (var (k, v) in map.Children)
                        if (Scalar(k) is { Length: > 0 } key && v is YamlSequenceNode list && list.Children.Count > 0 && list.Children.All(x => Scalar(x) is { Length: > 0 }))
                        {
                            var values = list.Children.Select(x => Scalar(x)!).ToList();
                            if (values.Distinct(StringComparer.Ordinal).Count() != values.Count) problems.Add($"{where}.{key}: [{string.Join(", ", values)}] repeats a value");
                            sweep.Add((key, values));
                        }
                        else problems.Add($"{where}: '{Scalar(k)}' needs a non-empty list of scalar values (key.path: [a, b, c])");
                    break;
                default:
                    problems.Add($"{where}: expected a mapping of key.path: [values]");
                    break;
            }
            return sweep;
        }

        void Check(Action check)
        {
            try
            {
                check();
            }
            catch (ArgumentException ex)
            {
                problems.Add(ex.Message.Replace(" (Parameter 'name')", "", StringComparison.Ordinal));
            }
        }
    }

    /// <summary>Every combination of the swept values, the first key varying slowest; one empty combination when nothing is swept.</summary>
    private static IEnumerable<List<KeyValuePair<string, string>>> Product(List<(string Key, List<string> Values)> sweep)
    {
        IEnumerable<List<KeyValuePair<string, string>>> combos = [[]];
        foreach (var (key, values) in sweep)
            combos = combos.SelectMany(c => values.Select(v => new List<KeyValuePair<string, string>>([.. c, new(key, v)]))).ToList();
        return combos;
    }
}
