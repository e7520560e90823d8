using JobLog.Samples.Saga;
using Microsoft.Extensions.Hosting;

using var host = SagaSample.CreateHost(args);
await host.StartAsync();
await SagaSample.RunAsync(host.Services);
await Task.Delay(TimeSpan.FromSeconds(3));
await host.StopAsync();
Console.WriteLine("Done: open the ledger with `JobLog.Worker tasks` or the dashboard.");
