using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Service;

namespace PrefPipe.Host.Tests.Service;

/// <summary><c>serve --health-port</c>: liveness and readiness answered over real HTTP by a started host.</summary>
public sealed class ServeHealthTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    private static LoadedPipeline Pipeline(string storage, string schedule)
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-health-").FullName;
        string yaml = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "pipelines", "demo.yaml"))
            .Replace("../assets/demo", Demo, StringComparison.Ordinal)
            .Replace("${PREFPIPE_STORAGE:-../runs}", storage, StringComparison.Ordinal)
            + $"\ntriggers:\n  schedule: \"{schedule}\"\n";
        string path = Path.Combine(dir, "demo.yaml");
        File.WriteAllText(path, yaml);
        return PipelineLoader.Load(path, [], _ => null);
    }

    private static async Task<(IHost Host, HttpClient Http)> StartAsync(LoadedPipeline pipeline)
    {
        var host = ServeHost.Build(new ServeSettings(pipeline, [], Once: false, JsonLogs: false) { HealthPort = 0 }, logging => logging.ClearProviders());
        await host.StartAsync();
        string address = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        int port = new Uri(address.Replace("[::]", "localhost", StringComparison.Ordinal)).Port;
        return (host, new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") });
    }

    private static async Task<(HttpStatusCode Code, JsonElement Body)> GetAsync(HttpClient http, string path)
    {
        using var response = await http.GetAsync(new Uri(path, UriKind.Relative));
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, doc.RootElement.Clone());
    }

    [Fact]
    public async Task Serve_HealthPort_LiveAndReadyAnswer200_ThenReadyFailsWhenTheStoreIsGone()
    {
        string storage = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-health-").FullName, "runs");
        var (host, http) = await StartAsync(Pipeline(storage, "0 3 * * *"));
        using (host)
        using (http)
        {
            var (liveCode, live) = await GetAsync(http, ServeHost.LivePath);
            Assert.Equal(HttpStatusCode.OK, liveCode);
            Assert.Equal("Healthy", live.GetProperty("status").GetString());
            Assert.Equal(["trigger_loops"], live.GetProperty("checks").EnumerateObject().Select(p => p.Name));
            Assert.Equal("running", live.GetProperty("checks").GetProperty("trigger_loops").GetProperty("ScheduleService").GetString());

            var (readyCode, ready) = await GetAsync(http, ServeHost.ReadyPath);
            Assert.Equal(HttpStatusCode.OK, readyCode);
            Assert.Equal(["trigger_loops", "storage"], ready.GetProperty("checks").EnumerateObject().Select(p => p.Name));
            Assert.Contains("is writable", ready.GetProperty("checks").GetProperty("storage").GetProperty("description").GetString(), StringComparison.Ordinal);

            // The store's folder replaced by a file (a volume gone): not ready, still alive.
            Directory.Delete(storage, recursive: true);
            await File.WriteAllTextAsync(storage, "not a folder");
            var (notReadyCode, notReady) = await GetAsync(http, ServeHost.ReadyPath);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notReadyCode);
            Assert.Equal("Unhealthy", notReady.GetProperty("checks").GetProperty("storage").GetProperty("status").GetString());
            Assert.Contains("is not writable", notReady.GetProperty("checks").GetProperty("storage").GetProperty("description").GetString(), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await GetAsync(http, ServeHost.LivePath)).Code);

            await host.StopAsync();
        }
    }

    [Fact]
    public async Task Serve_ScheduleLoopEnded_LivenessFails503NamingIt()
    {
        // February 30th never comes: the schedule loop finds no next occurrence and ends; nothing will ever run again.
        string storage = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-health-").FullName, "runs");
        var (host, http) = await StartAsync(Pipeline(storage, "0 0 30 2 *"));
        using (host)
        using (http)
        {
            var loop = host.Services.GetServices<IHostedService>().OfType<ScheduleService>().Single();
            await loop.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(30));

            var (code, live) = await GetAsync(http, ServeHost.LivePath);

            Assert.Equal(HttpStatusCode.ServiceUnavailable, code);
            Assert.Equal("trigger loop(s) stopped: ScheduleService", live.GetProperty("checks").GetProperty("trigger_loops").GetProperty("description").GetString());
            Assert.Equal("stopped", live.GetProperty("checks").GetProperty("trigger_loops").GetProperty("ScheduleService").GetString());
            await host.StopAsync();
        }
    }

    [Fact]
    public void Build_NoHealthPort_ListensNowhere()
    {
        var host = ServeHost.Build(new ServeSettings(Pipeline(Path.Combine(Path.GetTempPath(), "prefpipe-health-none"), "0 3 * * *"), [], Once: false, JsonLogs: false), logging => logging.ClearProviders());
        using (host)
            Assert.Null(host.Services.GetService<IServer>());
    }
}
