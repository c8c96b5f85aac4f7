using System.Diagnostics;
using System.Text.Json;
using PrefPipe.Bench;
using Spectre.Console;

var benchmarks = typeof(IBenchmark).Assembly.GetTypes()
    .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IBenchmark).IsAssignableFrom(t))
    .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name, StringComparer.Ordinal)
    .ToList();

string? jsonPath = null;
var names = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--json" && i + 1 < args.Length) jsonPath = args[++i];
    else names.Add(args[i]);
}

if (names.Count == 0 || names[0] == "list")
{
    var list = new Table().AddColumn("benchmark").AddColumn("measures");
    foreach (var b in benchmarks) list.AddRow(b.Name, Markup.Escape(b.Description));
    AnsiConsole.Write(list);
    AnsiConsole.MarkupLine("Run: [bold]dotnet run -c Release --project bench/Bench -- all|NAME... [[--json FILE]][/]");
    return 0;
}

var selected = names[0] == "all" ? benchmarks : benchmarks.Where(b => names.Contains(b.Name)).ToList();
var unknown = names.Where(n => n != "all" && benchmarks.All(b => b.Name != n)).ToList();
if (unknown.Count > 0)
{
    Console.Error.WriteLine($"unknown benchmark(s): {string.Join(", ", unknown)}; run 'list' to see them");
    return 2;
}

var figures = new List<BenchFigure>();
foreach (var b in selected)
{
    AnsiConsole.MarkupLine($"[bold]{b.Name}[/]: {Markup.Escape(b.Description)}");
    var sw = Stopwatch.StartNew();
    figures.AddRange(await b.RunAsync().ConfigureAwait(false));
    AnsiConsole.MarkupLine($"  done in {sw.Elapsed.TotalSeconds:F1} s");
}

var table = new Table().AddColumn("benchmark").AddColumn("case").AddColumn("metric").AddColumn(new TableColumn("value").RightAligned()).AddColumn("unit");
foreach (var f in figures) table.AddRow(f.Benchmark, Markup.Escape(f.Case), Markup.Escape(f.Metric), f.Value.ToString("G6", System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(f.Unit));
AnsiConsole.Write(table);
if (jsonPath is not null)
{
    await File.WriteAllTextAsync(jsonPath, JsonSerializer.Serialize(figures, new JsonSerializerOptions { WriteIndented = true })).ConfigureAwait(false);
    AnsiConsole.MarkupLine($"figures written to {Markup.Escape(jsonPath)}");
}
return 0;
