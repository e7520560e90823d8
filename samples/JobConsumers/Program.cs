using JobLog.Samples.JobConsumers;

var app = JobConsumersSample.Build(args);
await app.StartAsync();
var (completed, cancelled) = await JobConsumersSample.RunScenarioAsync(app.Services, app.Lifetime.ApplicationStopping);
var dashboard = app.Urls.FirstOrDefault() + "/joblog";
Console.WriteLine($"""
    Two jobs ran:
      completed: {dashboard}/tasks/{completed}
      cancelled: {dashboard}/tasks/{cancelled}
    Every ConvertVideo job: {dashboard}/tasks?name=ConvertVideo   The job service's own messages: {dashboard}/tasks?internal=true
    Press Ctrl+C to stop.
    """);
await app.WaitForShutdownAsync();
