# Worked solutions for lesson 00. Each part replaces the exercise cell of the same number;
# in the lesson, `%load solutions/00.py` pastes this whole file into a cell.

# %% exercise 1
def deployment_ids(url):
    deployments = httpx.get(f"{url}/api/deployments").json()
    return [deployment["id"] for deployment in deployments]
